"""The VAS flows on the real store, Redis and Kafka, with the account service played by the
test: it reads the charge requests and answers on a topic of its own, as the contract says."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from mobi_contracts import Topic, parse_event
from mobi_contracts.events.account import (
    BalanceChanged,
    BalanceChangedData,
    BalanceChangeRejected,
    BalanceChangeRejectedData,
)
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    PointsRedeemedData,
    RedemptionGranted,
    RedemptionRefused,
    RedemptionReward,
)
from mobi_contracts.events.vas import VasChargeRequested
from mobi_contracts.topics import ACCOUNT_EVENTS, VAS_EVENTS
from servicekit.idempotency import IdempotencyKeys
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.testing import consuming, eventually, make_group, make_topic, read_all
from vas_service.charging import ChargeDesk, charge_claim
from vas_service.domain.catalog import DEMO_PACKS, DEMO_VAS, item_document
from vas_service.renewals import Renewals
from vas_service.store import CATALOG, CHARGES, CONSENTS, INDEXES, PUBLISH_BATCHES, SCHEDULE
from vas_service.subscriptions import VasService

pytestmark = pytest.mark.integration
MSISDN = "84901230001"


@dataclass
class World:
    store: Store
    vas: VasService
    desk: ChargeDesk
    renewals: Renewals
    topic: Topic
    answers: Topic
    publisher: EventPublisher
    redis: Redis


@pytest.fixture
async def world(store: Store, publisher: EventPublisher, redis: Redis, unique: str) -> World:
    await store.ensure_indexes(INDEXES)
    await store[CATALOG].insert_many([item_document(i) for i in (*DEMO_VAS, *DEMO_PACKS)])
    topic = await make_topic(f"test.vas-events.{unique}", VAS_EVENTS.events)
    answers = await make_topic(f"test.account-events.{unique}", ACCOUNT_EVENTS.events)
    desk = ChargeDesk(store, publisher, redis, topic, "tests")
    vas = VasService(
        store=store,
        desk=desk,
        relay=OutboxRelay(store, publisher, "tests", CONSENTS),
        keys=IdempotencyKeys(store),
        directory=None,
        topic=topic,
    )
    renewals = Renewals(
        store=store, desk=desk, vas=vas, publisher=publisher, topic=topic, service="tests", chunk=50
    )
    return World(store, vas, desk, renewals, topic, answers, publisher, redis)


async def requested(world: World, expect: int, timeout: float = 5) -> list[VasChargeRequested]:
    records = await read_all(world.topic.name, expect=expect, timeout=timeout)
    events = [parse_event(r.value) for r in records]
    return [e for e in events if isinstance(e, VasChargeRequested)]


async def pending_subscription(world: World, code: str = "MCLIP", msisdn: str = MSISDN) -> str:
    view = await world.vas.subscribe_in_app(
        msisdn, code, f"key-{uuid.uuid4().hex[:8]}", datetime.now(UTC), "t"
    )
    return str(view["id"])


async def test_concurrent_confirms_start_one_subscription_and_ask_one_charge(world: World) -> None:
    sid = await pending_subscription(world)
    now = datetime.now(UTC)
    views = await asyncio.gather(*(world.vas.confirm(MSISDN, sid, now, "t") for _ in range(8)))
    assert {v["status"] for v in views} == {"active"}
    charges = await requested(world, expect=1)
    assert [c.data.charge_id for c in charges] == [f"{sid}:0"]
    assert await world.store[CONSENTS].count_documents({"subscription_id": sid, "action": "activated"}) == 1


async def test_renewal_passes_far_ahead_repeated_and_concurrent_charge_each_period_once(world: World) -> None:
    sid = await pending_subscription(world)
    started = datetime.now(UTC)
    await world.vas.confirm(MSISDN, sid, started, "t")
    later = started + timedelta(days=20, minutes=1)
    results = await asyncio.gather(*(world.renewals.run_once(later, MSISDN) for _ in range(3)))
    assert sum(r.get("charged", 0) for r in results) == 20, results
    again = await world.renewals.run_once(later, MSISDN)
    assert not again.get("charged")
    charges = await requested(world, expect=21)
    ids = [c.data.charge_id for c in charges]
    assert sorted(ids, key=lambda i: int(i.split(":")[1])) == [f"{sid}:{n}" for n in range(21)]
    assert len(set(ids)) == len(ids)
    assert {c.data.kind for c in charges[1:]} == {"vas_renewal"}


async def test_a_cancelled_subscription_is_never_renewed(world: World) -> None:
    sid = await pending_subscription(world)
    now = datetime.now(UTC)
    await world.vas.confirm(MSISDN, sid, now, "t")
    await world.vas.cancel(await world.vas.one(MSISDN, sid), now, "t")
    for days in (1, 5, 60):
        stats = await world.renewals.run_once(now + timedelta(days=days, minutes=1), MSISDN)
        assert not stats.get("charged"), stats
    assert len(await requested(world, expect=2, timeout=2)) == 1  # and no second one
    cancelled = await world.store[CHARGES].find_one({"_id": f"{sid}:1"})
    assert cancelled is not None and cancelled["state"] == "cancelled"


async def test_a_skipped_period_is_claimed_so_no_pass_can_charge_it(world: World) -> None:
    sid = await pending_subscription(world)
    now = datetime.now(UTC)
    await world.vas.confirm(MSISDN, sid, now, "t")
    stats = await world.renewals.run_once(now + timedelta(hours=20), MSISDN)
    assert stats.get("notices") == 1
    await world.vas.skip(MSISDN, sid, now, "t")
    stats = await world.renewals.run_once(now + timedelta(days=2, minutes=1), MSISDN)
    assert stats.get("charged") == 1
    states = {
        c["period"]: c["state"] for c in await world.store[CHARGES].find({"subscription_id": sid}).to_list()
    }
    assert states == {0: "requested", 1: "skipped", 2: "requested"}


def answer(charge: VasChargeRequested, paid: bool) -> BalanceChanged | BalanceChangeRejected:
    common: dict[str, Any] = {
        "subject": charge.subject,
        "producer": "account-service",
        "correlation_id": charge.correlation_id,
        "causation_id": str(charge.event_id),
    }
    if paid:
        return BalanceChanged.new(
            **common,
            data=BalanceChangedData(
                entry_id=f"vas:{charge.data.charge_id}:main",
                account="main",
                unit="vnd",
                delta=-charge.data.amount_vnd,
                balance_after=5000,
                reason="vas_charge",
                cause_event_id=str(charge.event_id),
                cause_event_type="VasChargeRequested",
            ),
        )
    return BalanceChangeRejected.new(
        **common,
        data=BalanceChangeRejectedData(
            cause_event_id=str(charge.event_id),
            cause_event_type="VasChargeRequested",
            account="main",
            requested_delta=-charge.data.amount_vnd,
            available=100,
            reason="insufficient_funds",
        ),
    )


async def test_answers_on_kafka_become_one_receipt_each_even_when_delivered_twice(
    world: World, unique: str
) -> None:
    paid_sid = await pending_subscription(world)
    pack = await world.vas.buy_pack(MSISDN, "D15", f"buy-{unique}", True, datetime.now(UTC), "t")
    poor_sid = await pending_subscription(world, "TUVI")
    now = datetime.now(UTC)
    await world.vas.confirm(MSISDN, paid_sid, now, "t")
    await world.vas.confirm(MSISDN, poor_sid, now, "t")
    charges = {c.data.subscription_id: c for c in await requested(world, expect=3)}
    group = await make_group(f"tests-vas-{unique}", (world.answers,), (BalanceChanged, BalanceChangeRejected))
    async with consuming(group, world.desk.on_answers, world.redis, world.publisher):
        paid, bought, refused = (
            answer(charges[paid_sid], True),
            answer(charges[pack["id"]], True),
            answer(charges[poor_sid], False),
        )
        await world.publisher.publish(world.answers.name, [paid, bought, refused, paid, refused])

        async def decided() -> bool:
            return (
                await world.store[CONSENTS].count_documents(
                    {
                        "msisdn": MSISDN,
                        "hour": {"$exists": True},
                        "action": {"$in": ["charged", "charge_failed"]},
                    }
                )
                == 3
            )

        await eventually(decided, timeout=10)
    records = await read_all(world.topic.name, expect=20, timeout=3)
    types = [orjson.loads(r.value)["event_type"] for r in records]
    unique_events = {orjson.loads(r.value)["event_id"]: orjson.loads(r.value)["event_type"] for r in records}
    assert sorted(
        t for t in unique_events.values() if t in ("VasCharged", "VasChargeFailed", "DataPackPurchased")
    ) == ["DataPackPurchased", "VasChargeFailed", "VasCharged", "VasCharged"]
    assert "VasCharged" in types
    now = datetime.now(UTC)
    assert (await world.vas.state(await world.vas.one(MSISDN, poor_sid), now))["status"] == "suspended"
    assert (await world.vas.state(await world.vas.one(MSISDN, paid_sid), now))["spent_this_month_vnd"] == 3000


async def test_a_big_pass_claims_in_batches_and_voids_charges_of_a_subscription_cancelled_meanwhile(
    world: World,
) -> None:
    due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    item = next(i for i in DEMO_VAS if i.code == "MCLIP")
    templates = [
        {
            "subscription_id": f"sub-BULK{n:012d}",
            "msisdn": f"8490{n:07d}",
            "code": item.code,
            "name": item.name_vi,
            "item_kind": "vas",
            "price_vnd": item.price_vnd,
            "period_days": 1,
            "quota_kb": None,
            "auto_renew": True,
            "started_at": due - timedelta(days=1),
        }
        for n in range(120)
    ]
    await world.vas.append_schedule(templates, 1)
    # A cancellation recorded while the pass runs (the claims of a pass that read the schedule
    # before it would otherwise go out).
    await world.store[CONSENTS].insert_one(
        {
            "_id": "sub-BULK000000000007:cancelled",
            "subscription_id": "sub-BULK000000000007",
            "msisdn": "84900000007",
            "action": "cancelled",
            "at": datetime.now(UTC),
            "hour": datetime.now(UTC).strftime("%Y%m%d%H"),
        }
    )
    stats = await world.renewals.run_once(due + timedelta(seconds=30))
    assert stats["charged"] == 119, stats
    assert len(await requested(world, expect=119)) == 119
    void = await world.store[CHARGES].find_one({"_id": "sub-BULK000000000007:1"})
    assert void is not None and void["state"] == "void"
    assert await world.store[SCHEDULE].count_documents({"period": 2}) == 119
    assert (await world.renewals.run_once(due + timedelta(seconds=40))).get("charged", 0) == 0


async def test_a_batch_a_crash_left_unpublished_is_published_by_the_sweeper(world: World) -> None:
    item = next(i for i in DEMO_VAS if i.code == "TUVI")
    now = datetime.now(UTC)
    template = {
        "subscription_id": "sub-CRASH0000000001",
        "msisdn": MSISDN,
        "code": item.code,
        "name": item.name_vi,
        "item_kind": "vas",
        "price_vnd": item.price_vnd,
        "period_days": 1,
        "started_at": now,
    }
    claim = charge_claim(template, 3, now, "t", world.topic) | {"batch": "crashed"}
    await world.store[PUBLISH_BATCHES].insert_one(
        {"_id": "crashed", "at": now - timedelta(minutes=5), "since": now}
    )
    await world.store[CHARGES].insert_one(claim)
    assert await world.desk.sweep() == 1
    assert [c.data.charge_id for c in await requested(world, expect=1)] == ["sub-CRASH0000000001:3"]
    assert await world.store[PUBLISH_BATCHES].count_documents({}) == 0


def redeemed(code: str, redemption_id: str) -> PointsRedeemed:
    return PointsRedeemed.new(
        subject=MSISDN,
        producer="loyalty-service",
        correlation_id=f"c-{redemption_id}",
        data=PointsRedeemedData(
            redemption_id=redemption_id,
            points=500,
            reward=RedemptionReward(kind="vas", catalog_code=f"R-{code}", vas_code=code),
            redeemed_at=datetime.now(UTC),
        ),
    )


async def test_a_redeemed_vas_starts_free_once_and_loyalty_gets_one_answer_each(
    world: World, unique: str
) -> None:
    granted, unknown = redeemed("MCLOUD", f"r1-{unique}"), redeemed("NOSUCH", f"r2-{unique}")
    now = datetime.now(UTC)
    await world.vas.grant_redemptions([granted, unknown], now)
    await world.vas.grant_redemptions([granted, unknown], now)  # a redelivery
    again = redeemed("MCLOUD", f"r3-{unique}")  # the same VAS while it runs
    await world.vas.grant_redemptions([again], now)
    records = await read_all(world.topic.name, expect=20, timeout=3)
    answers = {}
    for record in records:
        event = parse_event(record.value)
        if isinstance(event, RedemptionGranted | RedemptionRefused):
            answers.setdefault(event.data.redemption_id, set()).add((event.event_type, str(event.event_id)))
    assert {k: {t for t, _ in v} for k, v in answers.items()} == {
        f"r1-{unique}": {"RedemptionGranted"},
        f"r2-{unique}": {"RedemptionRefused"},
        f"r3-{unique}": {"RedemptionRefused"},
    }
    assert all(len(v) == 1 for v in answers.values())  # re-sent, but one event each
    running = await world.vas.subscriptions_of(MSISDN, now)
    assert [(s["code"], s["channel"], s["status"], s["next_renewal_at"]) for s in running] == [
        ("MCLOUD", "loyalty", "active", None)
    ]
    assert not await requested(world, expect=1, timeout=1)  # nothing was charged


async def test_a_pack_with_auto_renew_off_is_not_renewed_and_turned_on_again_is(
    world: World, unique: str
) -> None:
    now = datetime.now(UTC)
    pack = await world.vas.buy_pack(MSISDN, "C90N", f"buy-{unique}", None, now, "t")
    assert pack["auto_renew"] is True and pack["next_renewal_at"] is not None
    off = await world.vas.set_auto_renew(MSISDN, "C90N", False, now, "t")
    assert off["next_renewal_at"] is None and off["auto_renew"] is False
    assert not (await world.renewals.run_once(now + timedelta(days=31), MSISDN)).get("charged")
    await world.vas.set_auto_renew(MSISDN, "C90N", True, now, "t")
    assert (await world.renewals.run_once(now + timedelta(days=31), MSISDN)).get("charged") == 1
