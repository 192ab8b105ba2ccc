"""A number that changes hands, in the ledger on the real store and Kafka: the previous
tenancy's balances close in one decision (a replay changes nothing), a new owner's top-up that
arrives before the lifecycle event is kept, and what the previous owner agreed to (a VAS, a
reward) is never charged or granted to the new one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from account_service.audit import check_balances
from account_service.balance_state import current_balances
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from mobi_contracts.events.subscriber import SubscriberOwnerChanged, SubscriberOwnerChangedData
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.tenancy import at_store_precision
from servicekit.testing import make_topic, read_all, topup_recorded
from servicekit.testing import points_redeemed as redeemed
from servicekit.testing import vas_charge_requested as vas_charge

pytestmark = pytest.mark.integration
N = "84901221001"
ANSWERS = (BalanceChanged, BalanceChangeRejected, RedemptionGranted, RedemptionRefused)


@pytest.fixture
async def topic(unique: str) -> Topic:
    return await make_topic(f"test.account-tenancy.{unique}", ANSWERS)


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, topic: Topic) -> LedgerService:
    await store.ensure_indexes(INDEXES)
    since = datetime(2019, 3, 1, tzinfo=UTC)
    await store[SUBSCRIBERS].insert_one({"_id": N, "plan": "prepaid", "status": "active", "since": since})
    return LedgerService(store, publisher, topic)


async def new_owner(store: Store) -> datetime:
    """What provisioning records when the number changes hands (subscribers.py)."""
    boundary = at_store_precision(datetime.now(UTC))
    await store[SUBSCRIBERS].update_one({"_id": N}, {"$set": {"owner_since": boundary, "since": boundary}})
    return boundary


def owner_changed(boundary: datetime) -> SubscriberOwnerChanged:
    return SubscriberOwnerChanged.new(
        subject=N,
        producer="account-service",
        correlation_id="ops",
        data=SubscriberOwnerChangedData(
            change_id=f"{N}:2", status="active", plan="prepaid", owner_since=boundary, changed_at=boundary
        ),
    )


async def answers(topic: Topic, expect: int) -> list[AnyEvent]:
    return [parse_event(r.value) for r in await read_all(topic.name, expect=expect, timeout=5)]


async def test_the_previous_tenancys_balances_close_once_keeping_a_new_owners_top_up_that_came_first(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([topup_recorded(N, 100_000, f"T-old-{uuid.uuid4().hex[:6]}")])
    await ledger.apply([vas_charge(N, "pack-old", 10_000, bucket_kb=1_048_576, code="D5")])
    boundary = await new_owner(store)
    # Another topic, another order: the new owner's first top-up is decided before the event.
    await ledger.apply([topup_recorded(N, 50_000, f"T-new-{uuid.uuid4().hex[:6]}")])
    ended = owner_changed(boundary)
    await ledger.apply([ended])
    await ledger.apply([ended])  # redelivered
    await ledger.apply([ended.model_copy(update={"event_id": uuid.uuid4()})])  # published again
    state = await current_balances(store, N)
    assert (state.main, state.data, state.promos) == (50_000, (), ())
    closing = await store[JOURNAL].find({"msisdn": N, "kind": "tenancy_end"}).to_list()
    assert [d["_id"] for d in closing] == [f"tenancy:{N}:2"]
    assert sorted((e["account"], e["delta"]) for e in closing[0]["entries"]) == [
        ("data:D5-pack-old", -1_048_576),
        ("main", -90_000),
    ]
    assert (
        check_balances(await store[BALANCES].find({}).to_list(), await store[JOURNAL].find({}).to_list())
        == []
    )
    closed = [
        e for e in await answers(topic, expect=6) if e.data.cause_event_type == "SubscriberOwnerChanged"
    ]
    assert {(e.data.account, e.data.balance_after, e.data.reason) for e in closed} == {
        ("main", 50_000, "adjustment"),
        ("data:D5-pack-old", 0, "adjustment"),
    }


async def test_what_a_previous_owner_agreed_to_is_never_charged_or_granted_to_the_new_one(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([topup_recorded(N, 20_000, f"T-{uuid.uuid4().hex[:6]}")])
    boundary = await new_owner(store)
    await ledger.apply([topup_recorded(N, 30_000, f"T-{uuid.uuid4().hex[:6]}")])  # the new owner's

    def agreed(charge_id: str, at: datetime) -> AnyEvent:
        charge = vas_charge(N, charge_id, 5_000)
        return charge.model_copy(update={"data": charge.data.model_copy(update={"subscribed_at": at})})

    old_reward = redeemed(N, "rdm-old", kind="airtime", amount_vnd=10_000, catalog_code="AIR-10K")
    old_reward = old_reward.model_copy(
        update={"data": old_reward.data.model_copy(update={"redeemed_at": boundary - timedelta(minutes=5)})}
    )
    await ledger.apply(
        [
            agreed("sub-old:2026-12", boundary - timedelta(days=20)),
            agreed("sub-new:2026-12", boundary + timedelta(seconds=1)),
            old_reward,
        ]
    )
    published = await answers(topic, expect=6)
    refused = [e for e in published if isinstance(e, BalanceChangeRejected)]
    assert [(e.data.reason, e.data.requested_delta) for e in refused] == [("no_such_account", -5_000)]
    assert [e.data.reason for e in published if isinstance(e, RedemptionRefused)] == ["not_eligible"]
    state = await current_balances(store, N)
    assert state.main == 20_000 + 30_000 - 5_000, "only the new owner's VAS was charged"
