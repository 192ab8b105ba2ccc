"""Usage records applied/s by the account ledger consumer, against a bare loop that consumes the
same records and appends the same journal, on the same broker and store, in one run (issue 19).

20,000 UsageRecorded over 5,000 subscribers (each with an opening balance, so every debit is
paid) are produced once to a throwaway `bench.*` topic, then consumed in batches of 500 by:

1. a bare aiokafka `getmany` loop: parse the records, `insert_many` journal-shaped documents
   (~0.6 KB, the ledger's unique (msisdn, seq) index) into a collection of its own, commit per
   batch: what a decision costs when it is only an append;
2. the real ledger consumer: the kit's EventConsumer (Redis inbox) and LedgerService (decide
   in memory, one ordered journal insert, history rows, lazy snapshots, read cache, events);
3. with `--old`, the same ledger writing every touched subscriber's balance document every
   batch (a snapshot policy of every decision, no budget): the per-batch balance write the
   journal-as-truth design removed.

Each rate is timed from the first batch to the last record applied and printed with
`os.getloadavg()` (the machine is shared: read the ratio, not the absolute rates). Target:
ledger / bare >= 0.5.

    python bench/ledger_usage.py [--records 20000] [--subscribers 5000] [--rounds 1] [--old]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, IndexModel

from account_service.balance_state import Account, cache_entry
from account_service.domain.balances import Balances, to_document
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts import AnyEvent, ConsumerGroup, Topic, parse_event
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
from servicekit.app import tune_gc
from servicekit.buckets import hour_of
from servicekit.cache import VersionedCache
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.admin import ensure_topics
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store
from servicekit.redis_client import create_redis


@functools.cache
def access() -> KafkaAccess:
    """The `bench` principal (the broker authenticates every client: servicekit.kafka.access);
    read when first used, so `--help` works without a platform."""
    return KafkaAccess.local("bench")


MONGO = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
BATCH = 500
OPENING = 10_000_000  # VND each subscriber starts with: every debit of the run is paid
BARE_JOURNAL = "bare_journal"
EVERY_DECISION = SnapshotPolicy(every=1, seconds=0, budget=BATCH)  # the old per-batch balance write


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def numbers(subscribers: int) -> list[str]:
    return [f"8497{i:07d}" for i in range(subscribers)]


def records(count: int, subscribers: int) -> list[UsageRecorded]:
    owners = numbers(subscribers)
    started = datetime.now(UTC) - timedelta(minutes=5)
    return [
        UsageRecorded.new(
            subject=owners[i % subscribers],
            data=UsageRecordedData(
                usage_id=f"bench-{uuid.uuid4().hex}",
                kind="voice",
                quantity=60,
                unit="seconds",
                charge_vnd=100 * (1 + i % 10),
                started_at=started,
            ),
            producer="bench",
            correlation_id=f"bench-{i}",
        )
        for i in range(count)
    ]


async def seed(store: Store, subscribers: int, cache: VersionedCache | None = None) -> None:
    """Every subscriber registered, with an opening decision (seq 1), its snapshot, and (for
    the ledger) its read-cache entry as the ledger leaves it after a decision: the platform's
    state for a subscriber active within the cache's TTL. The consumer under test remembers
    nobody: it resumes each subscriber from the cache, as after a restart or a rebalance."""
    now = datetime.now(UTC)
    owners = numbers(subscribers)
    await store.ensure_indexes(INDEXES)
    await store[BARE_JOURNAL].create_indexes(
        [IndexModel([("msisdn", ASCENDING), ("seq", ASCENDING)], name="decision_order", unique=True)]
    )
    states = [to_document(Balances(msisdn=n, main=OPENING, seq=1)) for n in owners]
    await store.insert_all(SUBSCRIBERS, [{"_id": n, "plan": "prepaid", "status": "active"} for n in owners])
    await store.insert_all(
        BALANCES, [{"_id": n, **s, "rev": 1, "updated_at": now} for n, s in zip(owners, states, strict=True)]
    )
    await store.insert_all(
        JOURNAL,
        [
            {
                "_id": f"opening:{n}",
                "msisdn": n,
                "seq": 1,
                "at": now,
                "hour": hour_of(now),
                "kind": "opening",
                "entries": [{"account": "main", "unit": "vnd", "delta": OPENING, "balance_after": OPENING}],
                "state_after": s,
                "events": [],
                "views": {},
            }
            for n, s in zip(owners, states, strict=True)
        ],
    )
    if cache is not None:
        opened = [
            Account(Balances(msisdn=n, main=OPENING, seq=1), rev=1, snapshot_seq=1, as_of=now) for n in owners
        ]
        for start in range(0, len(opened), 1000):
            await cache.put_many([cache_entry(a) for a in opened[start : start + 1000]])


def cache_prefix(store: Store) -> str:
    return f"bench-balances-{store.db.name}"


async def seed_and_run(
    kind: str, store: Store, subscribers: int, run: Callable[[Store], Awaitable[float]]
) -> float:
    redis = create_redis(REDIS)
    cache = VersionedCache(redis, cache_prefix(store), 3600)
    try:
        await seed(store, subscribers, None if kind == "bare" else cache)
        return await run(store)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{cache_prefix(store)}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


def journal_shaped(event: UsageRecorded, seq: int, main: int, now: datetime) -> Doc:
    """What the bare loop appends: a decision's shape and size (~0.6 KB), no decision in it."""
    key = f"usage:{event.data.usage_id}"
    charge = event.data.charge_vnd
    return {
        "_id": key,
        "msisdn": event.subject,
        "seq": seq,
        "at": now,
        "hour": hour_of(now),
        "kind": "usage",
        "cause_event_id": str(event.event_id),
        "cause_event_type": event.event_type,
        "cause_at": event.data.started_at,
        "entries": [
            {
                "entry_id": f"{key}:main",
                "account": "main",
                "unit": "vnd",
                "delta": -charge,
                "balance_after": main,
                "reason": "usage",
                "description": f"voice {event.data.quantity} seconds",
            }
        ],
        "refused": None,
        "state_after": to_document(Balances(msisdn=event.subject, main=main, seq=seq)),
    }


async def produce(topic: Topic, batch: list[UsageRecorded]) -> None:
    publisher = EventPublisher(access(), "bench-loader")
    await publisher.start()
    try:
        for start in range(0, len(batch), 1000):
            await publisher.publish(topic.name, batch[start : start + 1000])
    finally:
        await publisher.stop()


async def bare(source: Topic, store: Store, count: int, tag: str) -> float:
    consumer = AIOKafkaConsumer(
        source.name,
        **access().aiokafka(),
        group_id=f"bench-ledger-bare-{tag}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    seqs: dict[str, int] = {}
    mains: dict[str, int] = {}
    done, started = 0, 0.0
    try:
        while done < count:
            fetched = await consumer.getmany(timeout_ms=50, max_records=BATCH)
            batch = [r for part in fetched.values() for r in part]
            if not batch:
                continue
            started = started or time.perf_counter()
            now = datetime.now(UTC)
            docs = []
            for record in batch:
                event = parse_event(record.value)
                assert isinstance(event, UsageRecorded)
                seqs[event.subject] = seqs.get(event.subject, 1) + 1
                mains[event.subject] = mains.get(event.subject, OPENING) - event.data.charge_vnd
                docs.append(journal_shaped(event, seqs[event.subject], mains[event.subject], now))
            await store[BARE_JOURNAL].insert_many(docs, ordered=True)
            await consumer.commit()
            done += len(batch)
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - started)


async def ledger(
    source: Topic,
    sink: Topic,
    store: Store,
    count: int,
    tag: str,
    policy: SnapshotPolicy | None,
) -> float:
    group = ConsumerGroup(name=f"bench-ledger-{tag}", topics=(source,), handles=(UsageRecorded,))
    await ensure_topics(access(), [group.dead_letter])
    redis, publisher = create_redis(REDIS), EventPublisher(access(), "bench")
    await publisher.start()
    cache = VersionedCache(redis, cache_prefix(store), 3600)  # seeded: see seed()
    service = LedgerService(store, publisher, sink, cache=cache, snapshots=policy)
    done, applied, started = asyncio.Event(), 0, 0.0

    async def counting(events: list[AnyEvent]) -> None:
        nonlocal applied, started
        started = started or time.perf_counter()
        await service.apply(events)
        applied += len(events)
        if applied >= count:
            done.set()

    consumer = EventConsumer(
        group, counting, service="bench", inbox=Inbox(redis, group.name, 3600), publisher=publisher
    )
    broker = KafkaBroker(access().bootstrap, security=access().faststream(), logger=None)
    consumer.subscribe(broker, max_records=BATCH, batch_timeout_ms=50, fetch_max_wait_ms=50)
    await broker.start()
    try:
        await done.wait()
        return count / (time.perf_counter() - started)
    finally:
        await broker.stop()
        await publisher.stop()
        await redis.aclose()


async def one_round(args: argparse.Namespace, round_no: int) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    source = Topic(
        name=f"bench.ledger-usage.{tag}.in", description="", events=(UsageRecorded,), producer="bench"
    )
    sink = Topic(
        name=f"bench.ledger-usage.{tag}.out",
        description="",
        events=(BalanceChanged, BalanceChangeRejected),
        producer="bench",
    )
    await ensure_topics(access(), [source, sink])
    await produce(source, records(args.records, args.subscribers))
    runs: list[tuple[str, Callable[[Store], Awaitable[float]]]] = [
        ("bare", lambda store: bare(source, store, args.records, tag)),
        ("ledger", lambda store: ledger(source, sink, store, args.records, f"{tag}-new", None)),
    ]
    if args.old:
        runs.append(
            ("old", lambda store: ledger(source, sink, store, args.records, f"{tag}-old", EVERY_DECISION))
        )
    rates: dict[str, float] = {}
    try:
        for kind, run in runs:
            store = Store(MONGO, f"bench_ledger_{kind}_{tag}", app_name="bench")
            await store.connect()
            try:
                rates[kind] = await seed_and_run(kind, store, args.subscribers, run)
            finally:
                await store.client.drop_database(store.db.name)
                await store.close()
            print(f"round {round_no}: {kind:6} {rates[kind]:8,.0f} records/s   ({load()})", flush=True)
    finally:
        await delete_topics(
            [source.name, sink.name, f"dlq.bench-ledger-{tag}-new", f"dlq.bench-ledger-{tag}-old"]
        )
    return rates


async def delete_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**access().aiokafka(), client_id="bench-cleanup")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([n for n in names if n in existing])
    finally:
        await admin.close()


async def main() -> None:
    tune_gc()  # as every service runs (servicekit.app)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--subscribers", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--old", action="store_true", help="also the ledger writing every balance every batch"
    )
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        for kind, rate in (await one_round(args, round_no)).items():
            results.setdefault(kind, []).append(rate)
    median = {kind: statistics.median(rates) for kind, rates in results.items()}
    ratios = {
        kind: statistics.median(r / b for r, b in zip(results[kind], results["bare"], strict=True))
        for kind in results
    }
    lines = [
        f"\n{args.records} UsageRecorded over {args.subscribers} subscribers, batches of {BATCH}, "
        f"{args.rounds} round(s), median ({load()}):",
        f"  bare getmany + parse + insert_many journal-shaped  {median['bare']:8,.0f} records/s   1.00x",
        f"  ledger consumer (journal is the truth)             {median['ledger']:8,.0f} records/s   "
        f"{ratios['ledger']:.2f}x   (target >= 0.50x)",
    ]
    if "old" in median:
        lines.append(
            f"  ledger writing every balance every batch (old)     {median['old']:8,.0f} records/s   "
            f"{ratios['old']:.2f}x"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
