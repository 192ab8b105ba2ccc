"""The VAS flows on the real store, Redis and Kafka, with the account service played by the
test: it reads the charge requests and answers on a topic of its own, as the contract says.

Faults are injected between the writes of a use case (a completion that never ran, a publish
that failed) to show that the claim-plus-completion steps leave nothing half done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import (
    BalanceChanged,
    BalanceChangedData,
    BalanceChangeRejected,
    BalanceChangeRejectedData,
)
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from mobi_contracts.events.vas import VasChargeRequestedV2
from mobi_contracts.topics import ACCOUNT_EVENTS, VAS_EVENTS
from servicekit.errors import ApiError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import consuming, eventually, make_group, make_topic, points_redeemed, read_all
from vas_service.domain.catalog import DEMO_PACKS, DEMO_VAS, item_document
from vas_service.domain.slots import slot_claim
from vas_service.main import Parts, assemble
from vas_service.settings import VasSettings
from vas_service.store import CATALOG, CHARGES, CONSENTS, INDEXES, INFLIGHT, SCHEDULE

pytestmark = pytest.mark.integration
MSISDN = "84901230001"


@dataclass
class World:
    store: Store
    parts: Parts
    topic: Topic
    answers: Topic
    publisher: EventPublisher
    redis: Redis

    @property
    def vas(self) -> Any:
        return self.parts.use_cases


@pytest.fixture
async def world(store: Store, publisher: EventPublisher, redis: Redis, unique: str) -> World:
    await store.ensure_indexes(INDEXES)
    await store[CATALOG].insert_many([item_document(i) for i in (*DEMO_VAS, *DEMO_PACKS)])
    topic = await make_topic(f"test.vas-events.{unique}", VAS_EVENTS.events, producer="vas-service")
    answers = await make_topic(
        f"test.account-events.{unique}",
        ACCOUNT_EVENTS.events,
        producer="account-service",
        also_produced_by=("loyalty-service",),
    )
    settings = VasSettings(service_name=f"tests-{unique}", renewal_chunk=50, app_requests_per_hour=1000)
    return World(store, assemble(settings, store, publisher, redis, topic), topic, answers, publisher, redis)


async def requested(world: World, expect: int, timeout: float = 5) -> list[VasChargeRequestedV2]:
    records = await read_all(world.topic.name, expect=expect, timeout=timeout)
    events = [parse_event(r.value) for r in records]
    return [e for e in events if isinstance(e, VasChargeRequestedV2)]


async def charges_of(world: World, timeout: float = 2) -> list[str]:
    """Charge ids published (each once, however often it was sent)."""
    return sorted({c.data.charge_id for c in await requested(world, 10**6, timeout)})


async def pending(world: World, code: str = "MCLIP", msisdn: str = MSISDN) -> str:
    key = f"key-{uuid.uuid4().hex[:8]}"
    view = await world.vas.subscribe_in_app(msisdn, code, key, datetime.now(UTC), "t", None)
    return str(view["id"])


async def active(world: World, code: str = "MCLIP", msisdn: str = MSISDN) -> tuple[str, datetime]:
    sid = await pending(world, code, msisdn)
    now = datetime.now(UTC)
    await world.vas.confirm(msisdn, sid, now, "t", None)
    return sid, now


async def test_concurrent_confirms_start_one_subscription_and_ask_one_charge(world: World) -> None:
    sid = await pending(world)
    now = datetime.now(UTC)
    views = await asyncio.gather(*(world.vas.confirm(MSISDN, sid, now, "t", None) for _ in range(8)))
    assert {v["status"] for v in views} == {"active"}
    assert await charges_of(world) == [f"{sid}:0"]
    assert await world.store[CONSENTS].count_documents({"subscription_id": sid, "action": "activated"}) == 1
    assert await world.store[INFLIGHT].count_documents({}) == 0


async def test_renewal_passes_far_ahead_repeated_and_concurrent_charge_each_period_once(world: World) -> None:
    sid, started = await active(world)
    later = started + timedelta(days=20, minutes=1)
    renewals = world.parts.renewals
    results = await asyncio.gather(*(renewals.run_once(later, MSISDN) for _ in range(3)))
    assert sum(r.get("charged", 0) for r in results) == 20, results
    assert not (await renewals.run_once(later, MSISDN)).get("charged")
    charges = await requested(world, expect=21)
    ids = [c.data.charge_id for c in charges]
    assert sorted(ids, key=lambda i: int(i.split(":")[1])) == [f"{sid}:{n}" for n in range(21)]
    assert {c.data.kind for c in charges[1:]} == {"vas_renewal"}


async def test_a_cancelled_subscription_is_never_renewed(world: World) -> None:
    sid, now = await active(world)
    await world.vas.cancel_one(MSISDN, sid, now, "t", None)
    for days in (1, 5, 60):
        assert not (await world.parts.renewals.run_once(now + timedelta(days=days, minutes=1), MSISDN)).get(
            "charged"
        )
    assert await charges_of(world) == [f"{sid}:0"]
    stopper = await world.store[CHARGES].find_one({"_id": f"{sid}:1"})
    assert stopper is not None and stopper["state"] == "cancelled"


async def test_a_renewal_that_completes_after_a_cancel_cannot_schedule_a_chargeable_period(
    world: World,
) -> None:
    """The review's race: a renewal claims its period, a cancellation answers, then the renewal's
    completion appends the next period. Today's cancel deleted the schedule before that append,
    and every later period was charged."""
    sid, now = await active(world)
    entry = await world.store[SCHEDULE].find_one({"_id": f"{sid}:1"})
    assert entry is not None
    racing = slot_claim(entry["template"], 1, now, "renewal", "requested")
    assert await world.parts.desk.claim([racing])  # the pass claimed period 1 ...
    await world.vas.cancel_one(MSISDN, sid, now, "t", None)  # ... the subscriber cancels ...
    await world.parts.renewals._complete([racing], {entry["_id"]: entry})  # ... the pass completes
    for days in (2, 3, 30):
        assert not (await world.parts.renewals.run_once(now + timedelta(days=days, minutes=1), MSISDN)).get(
            "charged"
        )
    assert await charges_of(world) == [f"{sid}:0"]  # period 1 was not on its way: voided
    voided = (await world.parts.desk.tickets([f"{sid}:1"]))[f"{sid}:1"]
    assert voided == "void"


async def test_a_charge_on_its_way_when_the_cancel_comes_is_published_before_the_cancel_answers(
    world: World,
) -> None:
    sid, now = await active(world)
    entry = await world.store[SCHEDULE].find_one({"_id": f"{sid}:1"})
    assert entry is not None
    racing = slot_claim(entry["template"], 1, now, "renewal", "requested")
    await world.parts.desk.claim([racing])
    await world.store["sends"].insert_one(
        {"_id": racing["_id"], "verdict": "send", "at": now}
    )  # ticket taken
    await world.vas.cancel_one(MSISDN, sid, now, "t", None)
    assert await charges_of(world, timeout=3) == [f"{sid}:0", f"{sid}:1"]  # out before the answer
    assert not (await world.parts.renewals.run_once(now + timedelta(days=9), MSISDN)).get("charged")


async def test_a_skipped_period_is_claimed_so_no_pass_can_charge_it(world: World) -> None:
    sid, now = await active(world)
    stats = await world.parts.renewals.run_once(now + timedelta(hours=20), MSISDN)
    assert stats.get("notices") == 1
    await world.vas.skip(MSISDN, sid, 1, now, "t", None)
    await world.vas.skip(MSISDN, sid, 1, now, "t", None)  # a retry of the same skip: harmless
    stats = await world.parts.renewals.run_once(now + timedelta(days=2, minutes=1), MSISDN)
    assert stats.get("charged") == 1
    states = {
        c["period"]: c["state"] for c in await world.store[CHARGES].find({"subscription_id": sid}).to_list()
    }
    assert states == {0: "requested", 1: "skipped", 2: "requested"}


async def test_skips_cannot_be_decided_for_periods_far_ahead(world: World) -> None:
    sid, now = await active(world, "MOBITV")  # weekly: the next renewal is 7 days away
    with pytest.raises(ApiError) as refused:
        await world.vas.skip(MSISDN, sid, None, now, "t", None)
    assert refused.value.code == "too_early"


async def test_an_activation_a_crash_cut_after_its_claim_is_charged_and_scheduled_by_the_resume_pass(
    world: World,
) -> None:
    sid = await pending(world)
    sub = await world.parts.chains.subscription(sid)
    now = datetime.now(UTC) - timedelta(minutes=1)
    lifecycle, chains = world.parts.lifecycle, world.parts.chains
    await chains.inflight.open(f"{sid}:activate", "activate", subscription_id=sid)
    await chains.log.append(
        MSISDN, f"{sid}:activated", "activated", "app", now, sub=sub, how="in_app", origin=now
    )
    # The process died here: the subscription says active, nothing is charged or scheduled.
    assert await world.store[CHARGES].count_documents({"subscription_id": sid}) == 0
    world.parts.resumer.after = timedelta(0)
    assert await world.parts.resumer.run_once() == 1
    assert await charges_of(world) == [f"{sid}:0"]
    assert await world.store[SCHEDULE].find_one({"_id": f"{sid}:1"}) is not None
    assert await world.store[INFLIGHT].count_documents({}) == 0
    assert lifecycle is not None


class FailingPublisher(EventPublisher):
    """The real publisher, refusing to send while `down` (Kafka unreachable)."""

    def __init__(self, real: EventPublisher) -> None:
        self.__dict__.update(real.__dict__)
        self.down = True

    async def publish_serialized(self, entries: Sequence[dict[str, Any]]) -> None:
        if self.down:
            raise ConnectionError("Kafka is down")
        await super().publish_serialized(entries)

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        if self.down:
            raise ConnectionError("Kafka is down")
        await super().publish(topic, events)


async def test_a_renewal_chunk_whose_publish_failed_is_published_and_scheduled_by_the_resume_pass(
    world: World,
) -> None:
    sid, started = await active(world)
    assert await charges_of(world) == [f"{sid}:0"]
    flaky = FailingPublisher(world.publisher)
    world.parts.desk.publisher = flaky
    with pytest.raises(ConnectionError):
        await world.parts.renewals.run_once(started + timedelta(days=1, minutes=1), MSISDN)
    assert await world.store[CHARGES].find_one({"_id": f"{sid}:1"}) is not None  # claimed, not sent
    assert await world.store[SCHEDULE].find_one({"_id": f"{sid}:2"}) is None  # today: never renewed again
    flaky.down = False
    world.parts.resumer.after = timedelta(0)
    assert await world.parts.resumer.run_once() == 1
    assert await charges_of(world) == [f"{sid}:0", f"{sid}:1"]
    assert await world.store[SCHEDULE].find_one({"_id": f"{sid}:2"}) is not None


async def test_every_chargeable_subscription_is_listed_and_cancellable_however_long_the_log(
    world: World,
) -> None:
    sid, now = await active(world)
    chatter = [
        {
            "_id": f"noise-{n}",
            "msisdn": MSISDN,
            "action": "renewal_accepted",
            "channel": "app",
            "at": now + timedelta(seconds=n),
        }
        for n in range(2_500)
    ]
    await world.store.insert_all(CONSENTS, chatter)
    later = now + timedelta(hours=1)
    listed = await world.vas.views.listing(MSISDN, later, None, False)
    assert [(s["id"], s["status"]) for s in listed] == [(sid, "active")]
    cancelled = await world.vas.cancel_code(MSISDN, "MCLIP", later, "t", None)
    assert [c["status"] for c in cancelled] == ["cancelled"]


async def test_two_confirmations_at_once_cannot_both_pass_a_cap_that_holds_one(world: World) -> None:
    await world.parts.chains.guards.set(
        MSISDN, {"block_external": False, "monthly_cap_vnd": 4_000}, datetime.now(UTC), None
    )
    first, second = await pending(world, "MCLIP"), await pending(world, "TUVI")  # 3 000 + 2 000 > 4 000
    now = datetime.now(UTC)
    calls = [world.vas.confirm(MSISDN, sid, now, "t", None) for sid in (first, second) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, ApiError)]
    assert refused and {r.code for r in refused} == {"monthly_cap_reached"}
    states = {
        (await world.vas.views.state(await world.parts.chains.subscription(s), now))["status"]
        for s in (first, second)
    }
    assert states == {"active", "pending"}
    assert await world.vas.views.month_spend(MSISDN, None, now) <= 4_000


async def test_a_pack_purchase_counts_against_the_cap(world: World, unique: str) -> None:
    now = datetime.now(UTC)
    await world.parts.chains.guards.set(
        MSISDN, {"block_external": False, "monthly_cap_vnd": 50_000}, now, None
    )
    with pytest.raises(ApiError) as refused:
        await world.vas.buy_pack(MSISDN, "C90N", f"buy-{unique}", None, now, "t", None)
    assert refused.value.code == "monthly_cap_reached"
    assert await world.vas.views.listing(MSISDN, now, None, True) == []  # a refused purchase leaves nothing
    await world.vas.buy_pack(MSISDN, "D15", f"buy2-{unique}", False, now, "t", None)  # 10 000: fits
    assert [c.split(":")[1] for c in await charges_of(world)] == ["0"]


def answer(charge: VasChargeRequestedV2, paid: bool) -> BalanceChanged | BalanceChangeRejected:
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
    paid_sid = await pending(world)
    pack = await world.vas.buy_pack(MSISDN, "D15", f"buy-{unique}", True, datetime.now(UTC), "t", None)
    poor_sid = await pending(world, "TUVI")
    now = datetime.now(UTC)
    await world.vas.confirm(MSISDN, paid_sid, now, "t", None)
    await world.vas.confirm(MSISDN, poor_sid, now, "t", None)
    charges = {c.data.subscription_id: c for c in await requested(world, expect=3)}
    group = await make_group(f"tests-vas-{unique}", (world.answers,), (BalanceChanged, BalanceChangeRejected))
    async with consuming(group, world.parts.answers.on_answers, world.redis, world.publisher):
        paid, bought, refused = (
            answer(charges[paid_sid], True),
            answer(charges[pack["id"]], True),
            answer(charges[poor_sid], False),
        )
        await world.publisher.publish(world.answers.name, [paid, bought, refused, paid, refused])

        async def decided() -> bool:
            outcomes = {"msisdn": MSISDN, "action": {"$in": ["charged", "charge_failed"]}}
            return await world.store[CONSENTS].count_documents(outcomes) == 3

        await eventually(decided, timeout=10)
    records = await read_all(world.topic.name, expect=20, timeout=3)
    unique_events = {orjson.loads(r.value)["event_id"]: orjson.loads(r.value)["event_type"] for r in records}
    receipts = ("VasCharged", "VasChargeFailed", "DataPackPurchased")
    assert sorted(t for t in unique_events.values() if t in receipts) == [
        "DataPackPurchased",
        "VasChargeFailed",
        "VasCharged",
        "VasCharged",
    ]
    now = datetime.now(UTC)
    views = world.vas.views
    assert (await views.state(await views.one(MSISDN, poor_sid), now))["status"] == "suspended"
    assert (await views.state(await views.one(MSISDN, paid_sid), now))["spent_this_month_vnd"] == 3000


async def test_a_redeemed_vas_runs_free_for_the_rewards_days_once_and_loyalty_gets_one_answer_each(
    world: World, unique: str
) -> None:
    def redeemed(code: str, rid: str, days: int | None = None) -> Any:
        return points_redeemed(
            MSISDN, rid, kind="vas", vas_code=code, vas_days=days, producer="loyalty-service"
        )

    granted, unknown = redeemed("FUNRING", f"r1-{unique}", 30), redeemed("NOSUCH", f"r2-{unique}")
    now = datetime.now(UTC)
    grant = world.parts.redemptions.grant
    await grant([granted, unknown], now)
    await grant([granted, unknown], now)  # a redelivery
    await grant([redeemed("FUNRING", f"r3-{unique}")], now)  # the same VAS while it runs
    answers: dict[str, set[str]] = {}
    for record in await read_all(world.topic.name, expect=20, timeout=3):
        event = parse_event(record.value)
        if isinstance(event, RedemptionGranted | RedemptionRefused):
            answers.setdefault(event.data.redemption_id, set()).add(event.event_type)
    assert answers == {
        f"r1-{unique}": {"RedemptionGranted"},
        f"r2-{unique}": {"RedemptionRefused"},
        f"r3-{unique}": {"RedemptionRefused"},
    }
    running = await world.vas.views.listing(MSISDN, now, None, False)
    assert [(s["code"], s["channel"], s["status"], s["next_renewal_at"]) for s in running] == [
        ("FUNRING", "loyalty", "active", None)
    ]
    assert running[0]["current_period_end"] - now >= timedelta(days=29, hours=23)  # a 30-day gift
    assert await charges_of(world, timeout=1) == []  # nothing was charged


async def test_a_pack_with_auto_renew_off_is_not_renewed_and_turned_on_again_is(
    world: World, unique: str
) -> None:
    now = datetime.now(UTC)
    pack = await world.vas.buy_pack(MSISDN, "C90N", f"buy-{unique}", None, now, "t", None)
    assert pack["auto_renew"] is True and pack["next_renewal_at"] is not None
    off = await world.vas.set_auto_renew(MSISDN, "C90N", False, now, None)
    assert off["next_renewal_at"] is None and off["auto_renew"] is False
    assert not (await world.parts.renewals.run_once(now + timedelta(days=31), MSISDN)).get("charged")
    on = await world.vas.set_auto_renew(MSISDN, "C90N", True, now, None)
    assert on["auto_renew"] is True and on["next_renewal_at"] == pack["next_renewal_at"]
    assert (await world.parts.renewals.run_once(now + timedelta(days=31), MSISDN)).get("charged") == 1


async def test_one_pending_or_running_subscription_of_a_code_per_subscriber(world: World) -> None:
    await pending(world)
    with pytest.raises(ApiError) as second:
        await pending(world)
    assert second.value.code == "already_subscribed"


async def test_the_end_of_a_tenancy_ends_its_subscriptions_once_and_shows_the_next_owner_nothing(
    world: World,
) -> None:
    old, started = await active(world)
    waiting = await pending(world, "TUVI")
    now = datetime.now(UTC)
    owner_since = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the store keeps it
    stopping = world.parts.stopping
    assert await stopping.end_tenancy(MSISDN, owner_since, owner_since) == 2
    assert await stopping.end_tenancy(MSISDN, owner_since, owner_since) == 0  # a replay
    since = await world.vas.views.tenancy(MSISDN)
    assert since == owner_since
    assert await world.vas.views.listing(MSISDN, datetime.now(UTC), since, True) == []
    assert await world.vas.consent_log(MSISDN, 100, since) == []
    for days in (1, 2, 40):
        assert not (
            await world.parts.renewals.run_once(started + timedelta(days=days, minutes=1), MSISDN)
        ).get("charged")
    assert await charges_of(world) == [f"{old}:0"]
    with pytest.raises(ApiError):
        await world.vas.confirm(MSISDN, waiting, datetime.now(UTC), "t", since)
    mine = await pending(world)  # the next owner's own subscription, to the same service
    assert [s["id"] for s in await world.vas.views.listing(MSISDN, datetime.now(UTC), since, True)] == [mine]


async def test_lifecycle_events_on_kafka_end_the_previous_tenancy_once_and_charge_nothing_more(
    world: World, unique: str
) -> None:
    from mobi_contracts.events.subscriber import (
        SubscriberLifecycleData,
        SubscriberOwnerChanged,
        SubscriberOwnerChangedData,
        SubscriberTerminated,
    )
    from mobi_contracts.topics import SUBSCRIBER_LIFECYCLE
    from vas_service.handlers import vas_handler

    recycled, leaving = MSISDN, "84901230002"
    old, started = await active(world, "MCLIP", recycled)
    gone, _ = await active(world, "TUVI", leaving)
    owner_since = datetime.now(UTC)
    changed = SubscriberOwnerChanged.new(
        subject=recycled,
        producer="account-service",
        correlation_id="t",
        data=SubscriberOwnerChangedData(
            change_id=f"owner-{unique}",
            status="active",
            plan="prepaid",
            owner_since=owner_since,
            changed_at=owner_since,
        ),
    )
    terminated = SubscriberTerminated.new(
        subject=leaving,
        producer="account-service",
        correlation_id="t",
        data=SubscriberLifecycleData(
            change_id=f"end-{unique}",
            status="terminated",
            plan="prepaid",
            owner_since=started,
            changed_at=owner_since,
        ),
    )
    topic = await make_topic(
        f"test.lifecycle.{unique}", SUBSCRIBER_LIFECYCLE.events, producer="account-service"
    )
    group = await make_group(f"tests-vas-life-{unique}", (topic,), SUBSCRIBER_LIFECYCLE.events)
    handler = vas_handler(world.parts.answers, world.parts.redemptions, world.parts.stopping)
    async with consuming(group, handler, world.redis, world.publisher):
        await world.publisher.publish(topic.name, [changed, terminated, changed])

        async def ended() -> bool:
            facts = await world.store[CONSENTS].count_documents(
                {"action": "cancelled", "reason": "tenancy_ended"}
            )
            return facts == 2

        await eventually(ended, timeout=20)
    for number, sid in ((recycled, old), (leaving, gone)):
        assert (await world.vas.views.state(await world.parts.chains.subscription(sid), owner_since))[
            "status"
        ] == "cancelled"
        for days in (1, 3):
            assert not (
                await world.parts.renewals.run_once(started + timedelta(days=days, minutes=1), number)
            ).get("charged")
    assert await charges_of(world) == sorted([f"{old}:0", f"{gone}:0"])
    since = await world.vas.views.tenancy(recycled)
    assert await world.vas.views.listing(recycled, datetime.now(UTC), since, True) == []
