"""The journal is the truth of balances; snapshots follow it lazily, on the real store and Kafka:
a restart decides on the journal's state, not a lagging snapshot's; two writers never both
decide one seq; snapshots are written within their budget and catch up; never below zero."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from account_service.audit import check_balances
from account_service.balance_state import current_balances
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.queries import AccountQueries
from account_service.store import BALANCES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.network import UsageRecorded
from servicekit.cache import VersionedCache
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import make_topic, topup_recorded, usage_recorded

pytestmark = pytest.mark.integration
A = "84901330001"
NUMBERS = [f"8490134{n:04d}" for n in range(1, 13)]


def usage(subject: str, charge: int, usage_id: str) -> UsageRecorded:
    return usage_recorded(subject, charge, usage_id)


@pytest.fixture
async def topic(store: Store, unique: str) -> Topic:
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_many(
        [{"_id": n, "plan": "prepaid", "status": "active"} for n in [A, *NUMBERS]]
    )
    return await make_topic(f"test.ledger-snapshots.{unique}", (BalanceChanged, BalanceChangeRejected))


async def journal_is_the_truth(store: Store) -> list[str]:
    return check_balances(await store[BALANCES].find({}).to_list(), await store[JOURNAL].find({}).to_list())


async def seqs_of(store: Store, number: str) -> list[int]:
    return [d["seq"] async for d in store[JOURNAL].find({"msisdn": number}).sort("seq", 1)]


async def test_a_restart_with_a_lagging_snapshot_decides_on_the_journal_not_the_snapshot(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    every_third = SnapshotPolicy(every=3, seconds=3_600)
    before = LedgerService(store, publisher, topic, snapshots=every_third)
    await before.apply(
        [topup_recorded(A, 10_000, "R1"), topup_recorded(A, 5_000, "R2"), usage(A, 3_000, "RU1")]
    )
    late_topup = topup_recorded(A, 20_000, "R3")
    await before.apply([late_topup])
    await before.apply([usage(A, 30_000, "RU2")])
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None and (snapshot["seq"], snapshot["main"]) == (3, 12_000), "it lags 2 decisions"

    restarted = LedgerService(store, publisher, topic, snapshots=every_third)  # nothing in memory
    await restarted.apply([late_topup, usage(A, 2_000, "RU3")])  # a redelivery, and a new debit
    # On the snapshot's state the top-up would be credited again and the 2,000 taken from 32,000.
    state = await current_balances(store, A)
    assert (state.main, state.seq) == (0, 6)
    assert await seqs_of(store, A) == [1, 2, 3, 4, 5, 6]
    await restarted.apply([usage(A, 1_000, "RU4")])
    refused = await store[JOURNAL].find_one({"_id": "usage:RU4"})
    assert refused is not None and refused["entries"] == [] and refused["refused"] is not None
    assert await journal_is_the_truth(store) == []


class WatchedLedger(LedgerService):
    """The real ledger, noting which subscribers it settles carefully."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.careful: list[str] = []

    async def _settle_carefully(self, sub: Any, now: datetime) -> None:
        self.careful.append(sub.start.state.msisdn)
        await super()._settle_carefully(sub, now)


async def test_a_restart_settles_carefully_only_the_subscribers_whose_snapshot_lags(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    lagging, current = NUMBERS[:3], NUMBERS[3:9]
    policy = SnapshotPolicy(every=2, seconds=3_600)
    before = LedgerService(store, publisher, topic, snapshots=policy)
    await before.apply([topup_recorded(n, 1_000, f"W{i}-{n}") for i in range(2) for n in lagging + current])
    await before.apply([topup_recorded(n, 1_000, f"W2-{n}") for n in lagging])  # snapshots now lag

    restarted = WatchedLedger(store, publisher, topic, snapshots=policy)
    await restarted.apply([topup_recorded(n, 1_000, f"W3-{n}") for n in current + lagging])
    assert sorted(restarted.careful) == sorted(lagging), "the others decided in the batch's inserts"
    for number in lagging:
        assert await seqs_of(store, number) == [1, 2, 3, 4]
        assert (await current_balances(store, number)).main == 4_000
    for number in current:
        assert await seqs_of(store, number) == [1, 2, 3]
    assert await journal_is_the_truth(store) == []


async def test_two_ledgers_on_one_subscriber_never_both_decide_one_seq(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    """A rebalance overlap: both hold the subscriber, both snapshot every decision."""
    eager = SnapshotPolicy(every=1)
    ledgers = [LedgerService(store, publisher, topic, snapshots=eager) for _ in range(2)]
    await ledgers[0].apply([topup_recorded(A, 100_000, "O0")])

    async def feed(ledger: LedgerService, tag: str) -> None:
        for n in range(8):
            batch: list[AnyEvent] = [topup_recorded(A, 1_000, f"O{tag}{n}"), usage(A, 700, f"OU{tag}{n}")]
            for _ in range(30):  # what the kit's consumer does with a TransientError
                try:
                    await ledger.apply(batch)
                    break
                except TransientError:
                    await asyncio.sleep(0.02)
            else:
                raise AssertionError("never applied")

    await asyncio.gather(feed(ledgers[0], "a"), feed(ledgers[1], "b"))
    decided = 1 + 2 * 2 * 8
    assert await seqs_of(store, A) == list(range(1, decided + 1)), "each seq decided once, unbroken"
    assert (await current_balances(store, A)).main == 100_000 + 16 * (1_000 - 700)
    assert await journal_is_the_truth(store) == []


async def test_a_snapshot_moved_by_another_writer_only_makes_the_ledger_read_the_journal_again(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    ledger = LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=1))
    await ledger.apply([topup_recorded(A, 1_000, "M1")])
    await store[BALANCES].update_one({"_id": A}, {"$inc": {"rev": 1}})  # another writer's snapshot
    await ledger.apply([topup_recorded(A, 2_000, "M2")])  # its snapshot write fails: not an error
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None and snapshot["seq"] == 1, "the moved snapshot was not overwritten"
    await ledger.apply([topup_recorded(A, 4_000, "M3")])  # decided on what the store holds
    state = await current_balances(store, A)
    assert (state.main, state.seq) == (7_000, 3)
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None and (snapshot["seq"], snapshot["main"]) == (3, 7_000)


async def test_snapshots_are_written_within_the_budget_most_behind_first_and_catch_up(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    ledger = LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=1, budget=3))
    first: list[AnyEvent] = [topup_recorded(A, 1_000, f"B{n}") for n in range(5)]
    first += [topup_recorded(n, 1_000, f"B-{n}") for n in NUMBERS[:8]]
    await ledger.apply(first)
    assert await store[BALANCES].count_documents({}) == 3
    assert await store[BALANCES].find_one({"_id": A}) is not None, "the most behind first"
    written = []
    for number in NUMBERS[8:11]:  # later batches, each with a new subscriber of its own
        await ledger.apply([topup_recorded(number, 1_000, f"B-{number}")])
        written.append(await store[BALANCES].count_documents({}))
    assert written == [6, 9, 12], "at most 3 a batch, until every snapshot caught up"
    for doc in await store[BALANCES].find({}).to_list():
        assert (doc["main"], doc["seq"]) == ((5_000, 5) if doc["_id"] == A else (1_000, 1))
    assert await journal_is_the_truth(store) == []


@pytest.mark.parametrize("seed", [7, 2026])
async def test_never_below_zero_across_batches_restarts_and_replays_with_lagging_snapshots(
    store: Store, publisher: EventPublisher, topic: Topic, seed: int
) -> None:
    rng = random.Random(seed)
    numbers = NUMBERS[:3]
    policy = SnapshotPolicy(every=4, seconds=3_600, budget=1)
    ledger = LedgerService(store, publisher, topic, snapshots=policy)
    expected = dict.fromkeys(numbers, 0)
    sent: list[AnyEvent] = []
    for batch_no in range(12):
        batch: list[AnyEvent] = []
        model = dict(expected)
        for n in range(rng.randrange(1, 8)):
            number = rng.choice(numbers)
            if sent and rng.random() < 0.15:
                batch.append(rng.choice(sent))  # a redelivery: changes nothing
                continue
            amount = rng.randrange(1, 6) * 1_000
            if rng.random() < 0.4:
                batch.append(topup_recorded(number, amount, f"S{seed}-{batch_no}-{n}"))
                model[number] += amount
            else:
                batch.append(usage(number, amount, f"SU{seed}-{batch_no}-{n}"))
                if model[number] >= amount:  # else refused: nothing is taken
                    model[number] -= amount
        if rng.random() < 0.3:
            ledger = LedgerService(store, publisher, topic, snapshots=policy)  # a restart
        await ledger.apply(batch)
        sent += [e for e in batch if e not in sent]
        expected = model
        for number in numbers:
            assert (await current_balances(store, number)).main == expected[number]
    entries = [e for d in await store[JOURNAL].find({}).to_list() for e in d["entries"]]
    assert entries and all(e["balance_after"] >= 0 for e in entries)
    assert await journal_is_the_truth(store) == []


async def test_the_app_reads_the_journals_state_on_a_cache_miss_and_an_older_put_never_hides_it(
    store: Store, publisher: EventPublisher, topic: Topic, redis: Redis, unique: str
) -> None:
    cache = VersionedCache(redis, f"test-balances-{unique}", 60)
    lazy = SnapshotPolicy(every=2, seconds=3_600)
    ledger = LedgerService(store, publisher, topic, cache=cache, snapshots=lazy)
    await ledger.apply([topup_recorded(A, 10_000, "C1"), topup_recorded(A, 5_000, "C2")])
    await ledger.apply([usage(A, 4_000, "CU1")])  # the snapshot stays at seq 2 (15,000)
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None and (snapshot["seq"], snapshot["main"]) == (2, 15_000)
    cached = VersionedCache.parse(await cache.get_raw(A))
    assert cached is not None and cached[0] == 3, "the ledger put the state, versioned by its seq"

    await redis.delete(cache.redis_key(A))  # expired, or Redis lost it
    queries = AccountQueries(store, cache)
    assert (await queries.balances(A))["main"] == {"balance_vnd": 11_000}
    refilled = VersionedCache.parse(await cache.get_raw(A))
    assert refilled is not None and refilled[0] == 3
    stale = orjson.dumps({"_id": A, **orjson.loads(refilled[1]), "main": 15_000})
    await cache.put(A, 2, stale)  # a slow reader that read the snapshot alone
    assert (await queries.balances(A))["main"] == {"balance_vnd": 11_000}


async def test_a_shutdown_flushes_the_lagging_snapshots_most_behind_first(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    ledger = LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=100, seconds=3_600))
    await ledger.apply([topup_recorded(n, 1_000, f"F-{n}") for n in NUMBERS[:4]])
    await ledger.apply([topup_recorded(NUMBERS[0], 1_000, "F2")])
    assert await store[BALANCES].count_documents({}) == 0, "nothing due yet"
    await ledger.flush_snapshots(limit=1)
    assert [d["_id"] async for d in store[BALANCES].find({})] == [NUMBERS[0]]
    await ledger.flush_snapshots()
    for doc in await store[BALANCES].find({}).to_list():
        assert (doc["main"], doc["seq"]) == ((2_000, 2) if doc["_id"] == NUMBERS[0] else (1_000, 1))
    assert await store[BALANCES].count_documents({}) == 4
    assert await journal_is_the_truth(store) == []
