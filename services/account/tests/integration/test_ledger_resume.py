"""A ledger that remembers nobody (after a restart, a rebalance, or beyond its memory) resumes
subscribers from the read cache, one Redis round trip per batch instead of a store read each;
an entry that lags the journal or names a snapshot that moved never makes a wrong decision."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from account_service.balance_state import current_balances
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts import Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from servicekit.cache import VersionedCache
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import make_topic, topup_recorded, usage_recorded

from .test_ledger_snapshots import WatchedLedger, journal_is_the_truth

pytestmark = pytest.mark.integration
NUMBERS = [f"8490135{n:04d}" for n in range(1, 7)]
EVERY_DECISION = SnapshotPolicy(every=1)


@pytest.fixture
async def topic(store: Store, unique: str) -> Topic:
    await store.ensure_indexes(INDEXES)
    await store.insert_all(SUBSCRIBERS, [{"_id": n, "plan": "prepaid", "status": "active"} for n in NUMBERS])
    return await make_topic(f"test.ledger-resume.{unique}", (BalanceChanged, BalanceChangeRejected))


@pytest.fixture
def cache(redis: Redis, unique: str) -> VersionedCache:
    return VersionedCache(redis, f"test-balances-{unique}", 60)


async def test_a_ledger_that_remembers_nobody_resumes_from_the_read_cache_not_the_snapshots(
    store: Store, publisher: EventPublisher, topic: Topic, cache: VersionedCache
) -> None:
    first = LedgerService(store, publisher, topic, cache=cache, snapshots=EVERY_DECISION)
    await first.apply([topup_recorded(n, 10_000, f"RC1-{n}") for n in NUMBERS])
    # A probe, not a state the ledger can reach: snapshots that would credit 1,000,000 more.
    await store.update_where(BALANCES, {}, {"$inc": {"main": 1_000_000}})

    resumed = WatchedLedger(store, publisher, topic, cache=cache, snapshots=SnapshotPolicy(every=50))
    await resumed.apply([usage_recorded(n, 4_000, f"RU1-{n}") for n in NUMBERS])
    assert resumed.careful == [], "every subscriber decided in the batch's insert"
    for number in NUMBERS:
        state = await current_balances(store, number)
        assert (state.main, state.seq) == (6_000, 2), "decided on the cached state, not the probe"


async def test_a_cache_entry_behind_the_journal_is_settled_on_the_journal(
    store: Store, publisher: EventPublisher, topic: Topic, cache: VersionedCache, redis: Redis
) -> None:
    number = NUMBERS[0]
    first = LedgerService(store, publisher, topic, cache=cache, snapshots=SnapshotPolicy(every=50))
    await first.apply([topup_recorded(number, 10_000, "RB1")])
    entry = await cache.get_raw(number)
    await first.apply([usage_recorded(number, 3_000, "RBU1")])  # the entry moves to seq 2
    await redis.set(cache.redis_key(number), entry or b"")  # as if the put of seq 2 was lost

    resumed = WatchedLedger(store, publisher, topic, cache=cache, snapshots=SnapshotPolicy(every=50))
    await resumed.apply([usage_recorded(number, 5_000, "RBU2")])
    assert resumed.careful == [number], "seq 2 was taken: the journal decides"
    state = await current_balances(store, number)
    assert (state.main, state.seq) == (2_000, 3), "10,000 - 3,000 - 5,000, not 10,000 - 5,000"
    assert await journal_is_the_truth(store) == []


async def test_an_entry_naming_a_snapshot_that_moved_is_not_resumed_from_again(
    store: Store, publisher: EventPublisher, topic: Topic, cache: VersionedCache
) -> None:
    number = NUMBERS[1]
    first = LedgerService(store, publisher, topic, cache=cache, snapshots=EVERY_DECISION)
    await first.apply([topup_recorded(number, 10_000, "RM1")])
    await store[BALANCES].update_one({"_id": number}, {"$inc": {"rev": 1}})  # another writer's snapshot

    resumed = LedgerService(store, publisher, topic, cache=cache, snapshots=EVERY_DECISION)
    await resumed.apply([topup_recorded(number, 1_000, "RM2")])  # its snapshot write fails: not an error
    hit = VersionedCache.parse(await cache.get_raw(number))
    assert hit is not None and hit[0] == 2, "readers still see the new state"
    assert b'"snapshot"' not in hit[1], "the entry no longer names a snapshot to resume from"

    again = LedgerService(store, publisher, topic, cache=cache, snapshots=EVERY_DECISION)
    await again.apply([topup_recorded(number, 1_000, "RM3")])  # resumed from the store: writes its snapshot
    snapshot = await store[BALANCES].find_one({"_id": number})
    assert snapshot is not None and (snapshot["seq"], snapshot["main"]) == (3, 12_000)
    assert await store[JOURNAL].count_documents({"msisdn": number}) == 3
