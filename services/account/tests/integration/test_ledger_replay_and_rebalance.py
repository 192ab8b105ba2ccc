"""The ledger consumer group on real Kafka and the store: a replay from offset 0 changes nothing,
and a member killed mid-batch during a rebalance loses and doubles nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from account_service.balance_state import current_balances
from account_service.ledger import LedgerService
from account_service.store import INDEXES, JOURNAL, SUBSCRIBERS, TOPUPS
from mobi_contracts import ConsumerGroup, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import (
    committed_offsets,
    eventually,
    make_group,
    make_topic,
    read_all,
    topup_recorded,
)
from servicekit.testing import consuming as kit_consuming

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("ledger_worker.py")


def topups(subscribers: int, per_subscriber: int, tag: str, first: int = 0) -> list[TopupRecorded]:
    numbers = [f"8490{n:07d}" for n in range(first, first + subscribers)]
    return [
        topup_recorded(number, 1_000, f"{tag}-{number}-{i}")
        for i in range(per_subscriber)
        for number in numbers
    ]


@pytest.fixture
async def topics(unique: str) -> tuple[Topic, Topic]:
    source = await make_topic(f"test.ledger-in.{unique}", (TopupRecorded,), partitions=3)
    sink = await make_topic(f"test.ledger-out.{unique}", (BalanceChanged, BalanceChangeRejected))
    return source, sink


def consuming(
    group: ConsumerGroup, ledger: LedgerService, redis: Redis, publisher: EventPublisher
) -> AbstractAsyncContextManager[object]:
    # A fresh inbox: the replay must be stopped by the journal, not by Redis.
    inbox = Inbox(redis, f"{group.name}-{os.urandom(4).hex()}", 600)
    return kit_consuming(group, ledger.apply, redis, publisher, inbox=inbox)


async def current_mains(store: Store) -> dict[str, int]:
    """Every subscriber's current main balance (the journal's, whatever the snapshots)."""
    numbers = await store[JOURNAL].distinct("msisdn")
    return {n: (await current_balances(store, n)).main for n in numbers}


async def snapshot(store: Store) -> tuple[dict[str, int], int, int]:
    balances = await current_mains(store)
    return balances, await store[JOURNAL].count_documents({}), await store[TOPUPS].count_documents({})


async def test_replaying_the_whole_topic_from_offset_zero_changes_no_balance(
    store: Store, redis: Redis, publisher: EventPublisher, topics: tuple[Topic, Topic], unique: str
) -> None:
    source, sink = topics
    await store.ensure_indexes(INDEXES)
    # One subscriber with more events than the old guard remembered (200 ids), and a crowd.
    events = topups(subscribers=1, per_subscriber=220, tag=unique, first=999)
    events += topups(subscribers=60, per_subscriber=5, tag=unique)
    await publisher.publish(source.name, events)
    first = await make_group(f"test-replay-a-{unique}", (source,), (TopupRecorded,))
    async with consuming(first, LedgerService(store, publisher, sink), redis, publisher):
        await eventually(lambda: journal_holds(store, len(events)), timeout=30)
    before = await snapshot(store)
    assert sorted(set(before[0].values())) == [5_000, 220_000]

    # An operator resets the group to the earliest offset: a new group id reads it all again.
    replay = await make_group(f"test-replay-b-{unique}", (source,), (TopupRecorded,))
    async with consuming(replay, LedgerService(store, publisher, sink), redis, publisher):
        published_before = len(await read_all(sink.name, expect=len(events), timeout=10))
        await eventually(lambda: committed_all(replay.name, source.name, len(events)), timeout=60)
    assert await snapshot(store) == before
    records = await read_all(sink.name, expect=published_before, timeout=10)
    assert len({r.value for r in records}) == len(events), "a replay republishes, never a new change"


async def test_a_member_killed_mid_batch_during_a_rebalance_applies_every_event_exactly_once(
    store: Store, publisher: EventPublisher, topics: tuple[Topic, Topic], unique: str, tmp_path: Path
) -> None:
    source, sink = topics
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_many([{"_id": f"8490{n:07d}", "plan": "prepaid"} for n in range(90)])
    group = f"test-rebalance-{unique}"
    await make_group(group, (source,), (TopupRecorded,))
    events = topups(subscribers=90, per_subscriber=20, tag=unique)
    pause = tmp_path / "mid-batch"
    with worker(source, sink, group, store, pause) as doomed, worker(source, sink, group, store, None):
        await publisher.publish(source.name, events)
        await eventually(pause.exists, timeout=30)  # the doomed one is between journal and events
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        await eventually(lambda: journal_holds(store, len(events)), timeout=90)
        await eventually(lambda: balances_are(store, 90, 20_000), timeout=30)

    journal = await store[JOURNAL].find({}, {"msisdn": 1, "seq": 1}).to_list()
    per_subscriber = Counter(d["msisdn"] for d in journal)
    assert set(per_subscriber.values()) == {20}
    for number in per_subscriber:
        seqs = sorted(d["seq"] for d in journal if d["msisdn"] == number)
        assert seqs == list(range(1, 21)), f"{number}: an unbroken run of decisions"
    assert await store[TOPUPS].count_documents({}) == len(events)
    changes = await read_all(sink.name, expect=len(events), timeout=20)
    assert len({r.value for r in changes}) == len(events)


@contextmanager
def worker(
    source: Topic, sink: Topic, group: str, store: Store, pause: Path | None
) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, str(WORKER), source.name, sink.name, group, store.db.name]
    process = subprocess.Popen([*args, *([str(pause)] if pause else [])], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"started"
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


async def journal_holds(store: Store, count: int) -> bool:
    return await store[JOURNAL].count_documents({}) == count


async def balances_are(store: Store, subscribers: int, main: int) -> bool:
    balances = list((await current_mains(store)).values())
    return len(balances) == subscribers and set(balances) == {main}


async def committed_all(group: str, topic: str, total: int) -> bool:
    offsets = await committed_offsets(group, topic, 3)
    return sum(o or 0 for o in offsets.values()) == total
