"""VAS charges, plan changes and loyalty rewards on the real store, Kafka and Redis: each
decided once, never overdrawn, answered in the same decision, visible in the balances view."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from account_service.announcements import stored_events
from account_service.audit import check_balances
from account_service.balance_state import current_balances
from account_service.domain.balances import to_document
from account_service.ledger import LedgerService
from account_service.queries import AccountQueries
from account_service.store import BALANCES, CHARGES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from mobi_contracts.events.vas import (
    PlanChanged,
    PlanChangedData,
    VasChargeRequested,
    VasRefundRequested,
    VasRefundRequestedData,
)
from servicekit.cache import VersionedCache
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import (
    committed_offsets,
    consuming,
    eventually,
    make_group,
    make_topic,
    read_all,
    topup_recorded,
)
from servicekit.testing import points_redeemed as redeemed
from servicekit.testing import vas_charge_requested as vas_charge

pytestmark = pytest.mark.integration
PREPAID, POSTPAID, STRANGER = "84901220001", "84901220002", "84901229999"
SUSPENDED = "84901220003"
ANSWERS = (BalanceChanged, BalanceChangeRejected, RedemptionGranted, RedemptionRefused)


def refund(subject: str, charge_id: str, amount: int) -> VasRefundRequested:
    return VasRefundRequested.new(
        subject=subject,
        data=VasRefundRequestedData(
            refund_id=f"{charge_id}:refund",
            charge_id=charge_id,
            subscription_id=f"sub-{charge_id}",
            amount_vnd=amount,
            requested_at=datetime.now(UTC),
        ),
        producer="vas-service",
        correlation_id=f"c-{charge_id}-refund",
    )


def plan_changed(subject: str, change_id: str, code: str, billing: str) -> PlanChanged:
    return PlanChanged.new(
        subject=subject,
        data=PlanChangedData(
            change_id=change_id, new_plan_code=code, billing=billing, effective_at=datetime.now(UTC)
        ),
        producer="vas-service",
        correlation_id=f"c-{change_id}",
    )


@pytest.fixture
async def topic(unique: str) -> Topic:
    return await make_topic(f"test.account-grants.{unique}", ANSWERS)


@pytest.fixture
async def cache(redis: Redis, unique: str) -> AsyncIterator[VersionedCache]:
    cache = VersionedCache(redis, f"test-balances-{unique}", 60)
    yield cache
    keys = [k async for k in redis.scan_iter(match=f"test-balances-{unique}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def ledger(
    store: Store, publisher: EventPublisher, topic: Topic, cache: VersionedCache
) -> LedgerService:
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_many(
        [
            {"_id": PREPAID, "plan": "prepaid", "status": "active"},
            {"_id": POSTPAID, "plan": "postpaid", "status": "active"},
            {"_id": SUSPENDED, "plan": "prepaid", "status": "suspended"},
        ]
    )
    return LedgerService(store, publisher, topic, cache=cache)


async def fund(ledger: LedgerService, msisdn: str, amount: int) -> None:
    await ledger.apply([topup_recorded(msisdn, amount, f"T-{uuid.uuid4().hex[:8]}")])


async def balance_doc(store: Store, msisdn: str) -> dict[str, Any]:
    """The subscriber's current balances (the journal's, whatever the snapshot)."""
    return to_document(await current_balances(store, msisdn))


async def answers(topic: Topic, expect: int) -> list[AnyEvent]:
    return [parse_event(r.value) for r in await read_all(topic.name, expect=expect, timeout=5)]


async def ledger_is_its_journal(store: Store) -> list[str]:
    return check_balances(await store[BALANCES].find({}).to_list(), await store[JOURNAL].find({}).to_list())


async def test_a_vas_charge_is_debited_once_however_often_it_is_delivered(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await fund(ledger, PREPAID, 20_000)
    charge = vas_charge(PREPAID, "sub-1:2026-11", 5_000)
    await ledger.apply([charge])
    await ledger.apply([charge])  # redelivered
    await ledger.apply([charge, vas_charge(PREPAID, "sub-1:2026-11", 5_000)])  # published again, new id
    assert (await balance_doc(store, PREPAID))["main"] == 15_000
    assert await store[JOURNAL].count_documents({"_id": "vas:sub-1:2026-11"}) == 1
    published = await answers(topic, expect=5)
    changes = [e for e in published if isinstance(e, BalanceChanged) and e.data.reason == "vas_charge"]
    assert len({e.event_id for e in changes}) == 1, "replays republish the one answer, never a new one"
    (answer,) = {e.event_id: e for e in changes}.values()
    assert (answer.data.account, answer.data.delta, answer.data.balance_after) == ("main", -5_000, 15_000)
    assert (answer.data.cause_event_id, answer.data.cause_event_type) == (
        str(charge.event_id),
        "VasChargeRequested",
    )
    history = await store[CHARGES].find({"msisdn": PREPAID}).to_list()
    assert [(h["kind"], h["amount_vnd"], h["counterpart"]) for h in history] == [("vas", 5_000, "FUNRING")]


async def test_a_charge_beyond_the_main_balance_is_refused_and_changes_nothing(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await fund(ledger, PREPAID, 4_999)
    charge = vas_charge(PREPAID, "pack-1", 5_000, bucket_kb=1_048_576, code="D5")
    await ledger.apply([charge])
    doc = await balance_doc(store, PREPAID)
    assert (doc["main"], doc["data"]) == (4_999, [])
    rejected = [e for e in await answers(topic, expect=2) if isinstance(e, BalanceChangeRejected)]
    assert [(e.data.reason, e.data.requested_delta, e.data.available) for e in rejected] == [
        ("insufficient_funds", -5_000, 4_999)
    ]
    assert rejected[0].data.cause_event_id == str(charge.event_id)
    assert await store[CHARGES].count_documents({}) == 0


async def test_concurrent_writers_charging_one_subscriber_never_overdraw(
    ledger: LedgerService, store: Store, publisher: EventPublisher, topic: Topic, cache: VersionedCache
) -> None:
    """Two consumers holding the same subscriber at once (a rebalance overlap), each charging
    its own requests: the journal's (subscriber, seq) claim lets one state be extended once."""
    await fund(ledger, PREPAID, 10_000)
    other = LedgerService(store, publisher, topic, cache=cache)
    first = [vas_charge(PREPAID, f"a-{n}", 1_500) for n in range(10)]
    second = [vas_charge(PREPAID, f"b-{n}", 1_500) for n in range(10)]

    async def until_applied(worker: LedgerService, batch: list[AnyEvent]) -> None:
        for _ in range(20):  # what the kit's consumer does with a TransientError
            try:
                await worker.apply(batch)
                return
            except TransientError:
                await asyncio.sleep(0.05)
        raise AssertionError("never applied")

    await asyncio.gather(until_applied(ledger, list(first)), until_applied(other, list(second)))
    journal = await store[JOURNAL].find({"kind": "vas_charge"}).to_list()
    assert len(journal) == 20, "every charge decided exactly once"
    paid = [d for d in journal if d["entries"]]
    doc = await balance_doc(store, PREPAID)
    assert len(paid) == 6 and doc["main"] == 10_000 - 6 * 1_500 == 1_000
    assert await ledger_is_its_journal(store) == []


async def test_charges_through_the_consumer_on_kafka_stop_at_zero_and_a_replay_changes_nothing(
    ledger: LedgerService,
    store: Store,
    publisher: EventPublisher,
    redis: Redis,
    unique: str,
    topic: Topic,
    cache: VersionedCache,
) -> None:
    source = await make_topic(f"test.vas-in.{unique}", (VasChargeRequested,))
    group = await make_group(f"test-vas-{unique}", (source,), (VasChargeRequested,))
    await fund(ledger, PREPAID, 7_000)
    charges = [vas_charge(PREPAID, f"k-{n}", 1_000) for n in range(12)]
    async with consuming(group, ledger.apply, redis, publisher):
        await publisher.publish(source.name, [*charges, *charges[:4]])  # some delivered twice
        await eventually(lambda: all_read(group.name, source.name, 16))
    before = await balance_doc(store, PREPAID)
    assert before["main"] == 0
    assert await store[CHARGES].count_documents({"msisdn": PREPAID}) == 7
    # The whole topic again, by a consumer with no memory and an empty inbox (an operator's
    # offset reset with Redis lost): the journal alone stops it.
    replay = await make_group(f"test-vas-replay-{unique}", (source,), (VasChargeRequested,))
    fresh = LedgerService(store, publisher, topic, cache=cache)
    async with consuming(replay, fresh.apply, redis, publisher):
        await eventually(lambda: all_read(replay.name, source.name, 16))
    after = await balance_doc(store, PREPAID)
    assert (after["main"], after["seq"]) == (0, before["seq"])
    snapshot = await store[BALANCES].find_one({"_id": PREPAID})  # if written, a copy of that state
    assert snapshot is None or (snapshot["main"], snapshot["seq"]) == (0, before["seq"])
    assert await store[JOURNAL].count_documents({"kind": "vas_charge"}) == 12


async def all_read(group: str, topic: str, count: int) -> bool:
    return sum(o or 0 for o in (await committed_offsets(group, topic, 3)).values()) >= count


async def test_a_data_pack_shows_in_the_balances_view_and_its_read_cache_at_once(
    ledger: LedgerService, store: Store, cache: VersionedCache
) -> None:
    queries = AccountQueries(store, cache)
    await fund(ledger, PREPAID, 30_000)
    before = await queries.balances(PREPAID)  # fills the cache
    assert before["data"] == [] and await cache.get_raw(PREPAID) is not None
    await ledger.apply([vas_charge(PREPAID, "D15:2026-11-26", 10_000, bucket_kb=1_572_864, code="D15")])
    raw = VersionedCache.parse(await cache.get_raw(PREPAID))
    assert raw is not None
    cached = orjson.loads(raw[1])
    assert [(d["id"], d["remaining_kb"]) for d in cached["data"]] == [("D15-D15:2026-11-26", 1_572_864)]
    shown = await queries.balances(PREPAID)
    assert shown["main"] == {"balance_vnd": 20_000}
    assert [(d["id"], d["remaining_mb"], d["total_mb"]) for d in shown["data"]] == [
        ("D15-D15:2026-11-26", 1536.0, 1536.0)
    ]
    assert await ledger_is_its_journal(store) == []


async def test_postpaid_charges_accrue_to_the_unbilled_amount(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([vas_charge(POSTPAID, "pp-1", 30_000, bucket_kb=2_048, code="BIG")])
    doc = await balance_doc(store, POSTPAID)
    assert (doc["main"], doc["unbilled"], [d["remaining_kb"] for d in doc["data"]]) == (0, 30_000, [2_048])
    changes = [e for e in await answers(topic, expect=2) if isinstance(e, BalanceChanged)]
    assert sorted((e.data.account, e.data.delta) for e in changes) == [
        ("data:BIG-pp-1", 2_048),
        ("unbilled", 30_000),
    ]
    assert await ledger_is_its_journal(store) == []


async def test_a_charge_for_a_number_that_is_not_a_subscriber_is_refused(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([vas_charge(STRANGER, "x-1", 0, bucket_kb=1_000, code="FREE")])
    (answer,) = await answers(topic, expect=1)
    assert isinstance(answer, BalanceChangeRejected) and answer.data.reason == "no_such_account"
    assert (await balance_doc(store, STRANGER))["data"] == []


async def test_an_airtime_reward_is_granted_once_and_answered_in_the_same_decision(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    event = redeemed(PREPAID, "rdm-1", kind="airtime", amount_vnd=20_000)
    await ledger.apply([event])
    await ledger.apply([event, redeemed(PREPAID, "rdm-1", kind="airtime", amount_vnd=20_000)])
    assert (await balance_doc(store, PREPAID))["main"] == 20_000
    (decision,) = await store[JOURNAL].find({"_id": "redemption:rdm-1"}).to_list()
    implied = [e.event_type for e in stored_events(decision, topic)]
    assert implied == ["BalanceChanged", "RedemptionGranted"], "the answer is in the decision"
    published = await answers(topic, expect=6)
    granted = {e.event_id: e for e in published if isinstance(e, RedemptionGranted)}
    (answer,) = granted.values()
    assert (answer.data.redemption_id, answer.data.granter, answer.data.cause_event_id) == (
        "rdm-1",
        "account-service",
        str(event.event_id),
    )
    reasons = {e.data.reason for e in published if isinstance(e, BalanceChanged)}
    assert reasons == {"loyalty_redemption"}


async def test_a_data_reward_becomes_a_bucket_valid_for_its_days(
    ledger: LedgerService, store: Store, cache: VersionedCache, topic: Topic
) -> None:
    event = redeemed(PREPAID, "rdm-2", kind="data", data_kb=2_097_152, validity_days=7)
    await ledger.apply([event])
    await ledger.apply([event])
    shown = await AccountQueries(store, cache).balances(PREPAID)
    (bucket,) = shown["data"]
    assert (bucket["id"], bucket["total_mb"]) == ("loyalty:rdm-2", 2048.0)
    expected = event.data.redeemed_at + timedelta(days=7)
    assert abs(bucket["expires_at"] - expected) < timedelta(milliseconds=1)  # the store keeps ms
    kinds = {type(e) for e in await answers(topic, expect=4)}
    assert kinds == {BalanceChanged, RedemptionGranted}
    assert await ledger_is_its_journal(store) == []


async def test_a_reward_for_an_unknown_or_inactive_number_is_refused_so_loyalty_gives_points_back(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply(
        [
            redeemed(STRANGER, "rdm-3", kind="airtime", amount_vnd=10_000),
            redeemed(SUSPENDED, "rdm-4", kind="data", data_kb=1_024, validity_days=1),
        ]
    )
    refused = {
        e.data.redemption_id: e for e in await answers(topic, expect=2) if isinstance(e, RedemptionRefused)
    }
    assert {k: e.data.reason for k, e in refused.items()} == {
        "rdm-3": "no_such_subscriber",
        "rdm-4": "not_eligible",
    }
    assert all(e.data.granter == "account-service" for e in refused.values())
    assert (await balance_doc(store, STRANGER))["main"] == 0
    assert (await balance_doc(store, SUSPENDED))["data"] == []


async def test_a_vas_reward_is_left_to_the_vas_service(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([redeemed(PREPAID, "rdm-5", kind="vas", vas_code="FUNRING")])
    assert await store[JOURNAL].count_documents({}) == 0
    assert await store[BALANCES].count_documents({}) == 0
    assert await read_all(topic.name, expect=1, timeout=1) == []


async def test_a_plan_change_is_recorded_once_and_a_replayed_older_one_does_not_undo_a_newer(
    ledger: LedgerService, store: Store, cache: VersionedCache
) -> None:
    older = plan_changed(PREPAID, "chg-1", "MOBIF", "prepaid")
    newer = plan_changed(PREPAID, "chg-2", "MOBIQ", "postpaid")
    await ledger.apply([older])
    await ledger.apply([newer])
    await ledger.apply([older, newer])  # replayed
    subscriber = await store[SUBSCRIBERS].find_one({"_id": PREPAID})
    assert subscriber is not None
    assert (subscriber["plan"], subscriber["plan_code"]) == ("postpaid", "MOBIQ")
    shown = await AccountQueries(store, cache).balances(PREPAID)
    assert (shown["plan"], shown["plan_code"]) == ("postpaid", "MOBIQ")
    assert await store[JOURNAL].count_documents({"kind": "plan_change"}) == 2
    await ledger.apply([vas_charge(PREPAID, "after-plan", 9_000)])  # now billed, not debited
    assert (await balance_doc(store, PREPAID))["unbilled"] == 9_000


async def test_a_refund_credits_once_and_only_what_was_charged(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await fund(ledger, PREPAID, 10_000)
    await ledger.apply([vas_charge(PREPAID, "r-1", 3_000)])
    give_back = refund(PREPAID, "r-1", 3_000)
    await ledger.apply([give_back])
    await ledger.apply([give_back, refund(PREPAID, "r-1", 3_000)])  # redelivered, republished
    assert (await balance_doc(store, PREPAID))["main"] == 10_000
    credits = {
        e.event_id: e
        for e in await answers(topic, expect=5)
        if isinstance(e, BalanceChanged) and e.data.cause_event_type == "VasRefundRequested"
    }
    assert [(e.data.account, e.data.delta) for e in credits.values()] == [("main", 3_000)]
    for never_charged in (refund(PREPAID, "no-such-charge", 1_000), refund(POSTPAID, "r-1", 3_000)):
        with pytest.raises(ValueError, match="never charged"):  # a data error: a dead letter
            await ledger.apply([never_charged])
    assert await ledger_is_its_journal(store) == []


async def test_two_refund_ids_for_one_charge_credit_once(ledger: LedgerService, store: Store) -> None:
    await fund(ledger, PREPAID, 10_000)
    await ledger.apply([vas_charge(PREPAID, "r-2", 3_000)])
    first = refund(PREPAID, "r-2", 3_000)
    second = VasRefundRequested.new(
        subject=PREPAID,
        data=first.data.model_copy(update={"refund_id": "another-refund-of-r-2"}),
        producer="vas-service",
        correlation_id="c-r-2-again",
    )
    await ledger.apply([first])
    await ledger.apply([second])
    await ledger.apply([first, second])
    assert (await balance_doc(store, PREPAID))["main"] == 10_000
    assert await store[JOURNAL].count_documents({"kind": "vas_refund"}) == 1
    assert await ledger_is_its_journal(store) == []


async def test_a_plan_change_for_a_number_not_in_the_registry_changes_nothing(
    ledger: LedgerService, store: Store
) -> None:
    await fund(ledger, STRANGER, 1_000)  # a number the operator does not serve
    await ledger.apply([plan_changed(STRANGER, "chg-x", "MOBIGOLD", "postpaid")])
    doc = await balance_doc(store, STRANGER)
    assert (doc["plan"], doc.get("plan_code")) == ("prepaid", None)
    decision = await store[JOURNAL].find_one({"_id": "plan:chg-x"})
    assert decision is not None and decision["refused"]["reason"] == "no_such_subscriber"


async def test_a_voice_pack_v2_charge_grants_minutes_journaled_and_shown(
    ledger: LedgerService, store: Store, cache: VersionedCache
) -> None:
    from mobi_contracts.events.vas import PackGrant, VasChargeRequestedV2, VasChargeRequestedV2Data

    await fund(ledger, PREPAID, 60_000)
    now = datetime.now(UTC)
    v50 = VasChargeRequestedV2.new(
        subject=PREPAID,
        producer="vas-service",
        correlation_id="c-v50",
        data=VasChargeRequestedV2Data(
            charge_id="sub-V50:0",
            subscription_id="sub-V50",
            code="V50",
            kind="data_pack",
            amount_vnd=50_000,
            period_start=now,
            period_end=now + timedelta(days=30),
            grants=[
                PackGrant(
                    grant_id="V50-sub-V50-0",
                    kind="voice",
                    name="V50",
                    quantity=30_000,
                    expires_at=now + timedelta(days=30),
                )
            ],
            requested_at=now,
        ),
    )
    await ledger.apply([v50, v50])
    shown = await AccountQueries(store, cache).balances(PREPAID)
    assert shown["main"]["balance_vnd"] == 10_000
    assert [(v["id"], v["remaining_minutes"]) for v in shown["voice"]] == [("V50-sub-V50-0", 500.0)]
    assert await ledger_is_its_journal(store) == []
