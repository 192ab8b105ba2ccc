"""Settling payments on the real store and Kafka: one outcome wins, its events go out once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mobi_contracts.events.payment import BillPaid, PaymentFailed, PaymentSucceeded, TopupRecorded
from payment_service.domain.rules import AmountRules, ProviderResult
from payment_service.payments import PaymentService
from payment_service.provider import Provider
from payment_service.settings import PaymentSettings
from payment_service.store import FINALS, PAYMENTS
from servicekit.directory import AccountDirectory
from servicekit.idempotency import IdempotencyKeys
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.testing import eventually, make_topic, read_all

pytestmark = pytest.mark.integration
PAID = ProviderResult(amount_vnd=100_000, response_code="00", transaction_status="00", transaction_no="123")


@pytest.fixture
async def service(store: Store, publisher: EventPublisher, unique: str) -> PaymentService:
    topic = await make_topic(
        f"test.payment-events.{unique}", (PaymentSucceeded, PaymentFailed, TopupRecorded, BillPaid)
    )
    accounts = AccountDirectory("http://127.0.0.1:1", "tests", "unused")
    return PaymentService(
        store=store,
        relay=OutboxRelay(store, publisher, "tests", FINALS),
        provider=Provider(PaymentSettings()),
        keys=IdempotencyKeys(store),
        accounts=accounts,
        rules=AmountRules(10_000, 5_000_000, 1_000),
        ttl=timedelta(minutes=15),
        service="tests",
        topic=topic,
    )


async def pending(store: Store, payment_id: str = "PAYTEST1") -> dict[str, object]:
    now = datetime.now(UTC)
    doc = {
        "_id": payment_id,
        "msisdn": "84901234567",
        "target_msisdn": "84931234567",
        "kind": "topup",
        "amount_vnd": 100_000,
        "method": "card_international",
        "status": "pending",
        "order_info": "x",
        "created_at": now,
        "expires_at": now + timedelta(minutes=15),
        "rev": 1,
    }
    await store[PAYMENTS].insert_one(doc)
    return doc


async def test_of_many_concurrent_settlements_one_wins_and_its_events_go_out_once(
    service: PaymentService, store: Store
) -> None:
    payment = await pending(store)
    now = datetime.now(UTC)
    wins = await asyncio.gather(*(service.settle(payment, "failed", None, "51", now) for _ in range(20)))
    assert wins.count("settled") == 1 and wins.count("duplicate") == 19

    async def relayed() -> bool:
        # Marking the entries relayed happens after the answer, in the background.
        doc = await store[FINALS].find_one({"_id": "PAYTEST1"})
        return doc is not None and doc["outbox"] == [] and doc["outbox_pending"] is False

    await eventually(relayed, timeout=5)
    records = await read_all(service.topic.name, expect=2, timeout=3)
    assert [dict(r.headers)["event-type"].decode() for r in records] == ["PaymentFailed"]


async def test_when_the_provider_says_both_paid_and_failed_the_payment_is_credited_once(
    service: PaymentService, store: Store
) -> None:
    payment = await pending(store)
    now = datetime.now(UTC)
    outcomes = ["succeeded"] * 10 + ["failed"] * 10
    results = await asyncio.gather(
        *(
            service.settle(payment, "succeeded", PAID, "", now)
            if o == "succeeded"
            else service.settle(payment, "failed", None, "51", now)
            for o in outcomes
        )
    )
    assert results.count("settled") == 1 and results.count("replaced") <= 1
    final = await service.final("PAYTEST1")
    assert final is not None and final["status"] == "succeeded", "money the provider took is credited"
    records = await read_all(service.topic.name, expect=4, timeout=5)
    types = [dict(r.headers)["event-type"].decode() for r in records]
    assert sorted(t for t in types if t != "PaymentFailed") == ["PaymentSucceeded", "TopupRecorded"]
    assert types.count("PaymentFailed") == results.count("replaced")


async def test_a_payment_expired_by_us_and_then_confirmed_paid_is_credited_and_counted(
    service: PaymentService, store: Store
) -> None:
    from payment_service.payments import LATE_SUCCESSES

    payment = await pending(store, "PAYLATE1")
    before = LATE_SUCCESSES.labels("tests", "expired")._value.get()
    assert await service.settle(payment, "expired", None, "11", datetime.now(UTC)) == "settled"
    assert await service.settle(payment, "succeeded", PAID, "", datetime.now(UTC)) == "replaced"
    assert await service.settle(payment, "succeeded", PAID, "", datetime.now(UTC)) == "duplicate"
    final = await service.final("PAYLATE1")
    assert final is not None
    assert (final["status"], final["replaces"]) == ("succeeded", "expired")
    assert LATE_SUCCESSES.labels("tests", "expired")._value.get() == before + 1
    records = await read_all(service.topic.name, expect=3, timeout=5)
    types = [dict(r.headers)["event-type"].decode() for r in records]
    assert sorted(types) == ["PaymentFailed", "PaymentSucceeded", "TopupRecorded"]
    shown = await service.status_for("84901234567", "PAYLATE1")
    assert shown["status"] == "succeeded"


async def test_a_topup_credits_the_target_and_the_receipt_goes_to_the_payer(
    service: PaymentService, store: Store
) -> None:
    payment = await pending(store, "PAYTEST2")
    assert await service.settle(payment, "succeeded", PAID, "", datetime.now(UTC))
    records = await read_all(service.topic.name, expect=2)
    keys = {dict(r.headers)["event-type"].decode(): r.key for r in records}
    assert keys == {"PaymentSucceeded": b"84901234567", "TopupRecorded": b"84931234567"}


async def test_the_status_of_a_settled_payment_is_its_final_record_to_its_payer_only(
    service: PaymentService, store: Store
) -> None:
    await pending(store, "PAYTEST3")
    await store.claim(
        FINALS,
        "PAYTEST3",
        msisdn="84901234567",
        status="failed",
        reason_code="51",
        reason="Insufficient funds",
        settled_at=datetime.now(UTC),
        outbox=[],
        outbox_pending=False,
        rev=1,
    )
    shown = await service.status_for("84901234567", "PAYTEST3")
    assert (shown["status"], shown["reason_code"]) == ("failed", "51")
    with pytest.raises(Exception, match="not found"):
        await service.status_for("84931234567", "PAYTEST3")


async def test_a_bill_paid_by_two_payments_is_paid_once_and_the_second_is_credited_as_a_topup(
    service: PaymentService, store: Store, unique: str
) -> None:
    bill = f"B-TWICE-{unique}"
    first, second = (
        await pending(store, f"PAYBILL1{unique}")
        | {"kind": "bill", "bill_id": bill, "target_msisdn": "84901234567"},
        await pending(store, f"PAYBILL2{unique}")
        | {"kind": "bill", "bill_id": bill, "target_msisdn": "84901234567"},
    )
    now = datetime.now(UTC)
    assert await service.settle(first, "succeeded", PAID, "00", now) == "settled"
    assert await service.settle(second, "succeeded", PAID, "00", now) == "settled"
    assert await service.settle(second, "succeeded", PAID, "00", now) == "duplicate"
    records = await read_all(service.topic.name, expect=4, timeout=5)
    effects = {
        dict(r.headers)["event-type"].decode(): r.value
        for r in records
        if dict(r.headers)["event-type"] != b"PaymentSucceeded"
    }
    assert set(effects) == {"BillPaid", "TopupRecorded"}, "the bill is paid once, the rest credited"
    assert f"PAYBILL2{unique}".encode() in effects["TopupRecorded"]
    shown = await service.current(f"PAYBILL2{unique}")
    assert shown is not None and (shown["status"], shown["credited_as"]) == ("succeeded", "topup")
