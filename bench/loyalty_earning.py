"""Earning throughput: TopupRecorded events per second turned into points ledger entries by the
loyalty consumer (the kit's batch consumer with Programme.earn_from: each member's state read
once and then remembered, one ordered insert of the entries per batch and no wallet write but
the lazy snapshots (a member 50 entries or 30 s behind, at most 50 per batch), PointsEarned
published),
against the bare consume-and-commit loop of the foundation benchmark (aiokafka getmany +
parse + commit, no store) on the same broker, in the same run.

    python bench/loyalty_earning.py [--events 5000] [--members 500] [--rounds 2]

Timed from the first batch handed to the work to the last one applied. Every member is
enrolled beforehand, so every event earns; the run checks that each event made exactly one
ledger entry.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer

# The baseline is the foundation benchmark's bare loop, run on the same events.
from consumer_throughput import bare_no_store, cleanup, load_only  # bench/ is on the path when run
from faststream.kafka import KafkaBroker

from loyalty_service.domain.rules import EarningRules, Eligibility, TransferRules
from loyalty_service.domain.wallet import Wallet, to_document
from loyalty_service.handlers import loyalty_handler
from loyalty_service.ledger import PointsLedger
from loyalty_service.offers import Offers
from loyalty_service.programme import Programme
from loyalty_service.redemptions import Redemptions
from loyalty_service.store import CARD_REQUESTS, ECODE_CLAIMS, INDEXES, LEDGER, WALLETS
from loyalty_service.tenancy import MembershipEnds
from mobi_contracts import ConsumerGroup, Topic, parse_event
from mobi_contracts.events.payment import TopupRecorded
from mobi_contracts.topics import LOYALTY_EVENTS
from servicekit.app import tune_gc
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.admin import ensure_topics
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.redis_client import create_redis
from servicekit.testing import topup_recorded

ACCESS = KafkaAccess.local("bench")  # the broker authenticates every client (servicekit.kafka.access)
MONGO = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
BATCH = 500


def members(count: int) -> list[str]:
    return [f"8479{i:07d}" for i in range(count)]


def events(count: int, numbers: list[str]) -> list[TopupRecorded]:
    return [
        topup_recorded(
            numbers[i % len(numbers)],
            50_000,
            f"bench-{uuid.uuid4().hex}",
            producer="bench",
            correlation_id=f"bench-{i}",
        )
        for i in range(count)
    ]


def entry_shaped(event: TopupRecorded, seq: int, points: int, now: datetime) -> dict[str, object]:
    """What the append baseline inserts: an earning entry's shape and size (its claim, delta,
    buckets, state after and detail), no decision in it."""
    month = f"{now.year + 1}-{now.month:02d}"
    wallet = Wallet(msisdn=event.subject, points=points, enrolled_at=now, seq=seq)
    return {
        "_id": f"earn:topup:{event.data.topup_id}",
        "member": event.subject,
        "seq": seq,
        "kind": "earn",
        "delta": 50,
        "buckets": {month: 50},
        "balance_after": points,
        "state_after": to_document(wallet) | {"buckets": {month: points}},
        "detail": {"source": "topup", "cause_id": event.data.topup_id, "amount_vnd": event.data.amount_vnd},
        "at": now,
        "rev": 1,
    }


async def bare_append(name: str, batch: list[TopupRecorded]) -> float:
    """The bare loop appending entry-shaped documents (one insert_many per batch, the ledger's
    unique (member, seq) index): what an earning costs when it is only an append."""
    source = await load_only(name, batch)
    store = Store(MONGO, f"bench_{name}", app_name="bench")
    await store.connect()
    await store.ensure_indexes({LEDGER: INDEXES[LEDGER]})
    consumer = AIOKafkaConsumer(
        source.name,
        **ACCESS.aiokafka(),
        group_id=f"bench-{name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    seqs: dict[str, int] = {}
    seen, started = 0, 0.0
    while seen < len(batch):
        fetched = await consumer.getmany(timeout_ms=50, max_records=BATCH)
        records = [r for part in fetched.values() for r in part]
        if not records:
            continue
        started = started or time.perf_counter()
        now, docs = datetime.now(UTC), []
        for r in records:
            event = parse_event(r.value)
            assert isinstance(event, TopupRecorded)
            seqs[event.subject] = seqs.get(event.subject, 0) + 1
            docs.append(entry_shaped(event, seqs[event.subject], 50 * seqs[event.subject], now))
        await store[LEDGER].insert_many(docs, ordered=True)
        await consumer.commit()
        seen += len(records)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await store.client.drop_database(store.db.name)
    await store.close()
    return len(batch) / elapsed


async def loyalty(name: str, batch: list[TopupRecorded], numbers: list[str]) -> float:
    source = await load_only(name, batch)
    sink = Topic(name=f"bench.{name}.out", description="", events=LOYALTY_EVENTS.events, producer="bench")
    group = ConsumerGroup(name=f"bench-{name}", topics=(source,), handles=(TopupRecorded,))
    await ensure_topics(ACCESS, [sink, group.dead_letter])
    store = Store(MONGO, f"bench_{name}", app_name="bench")
    await store.connect()
    await store.ensure_indexes(INDEXES)
    enrolled = datetime.now(UTC) - timedelta(days=1)
    await store.insert_new(
        WALLETS, [{"_id": m, **to_document(Wallet(msisdn=m, enrolled_at=enrolled))} for m in numbers]
    )
    redis, publisher = create_redis(REDIS), EventPublisher(ACCESS, "bench")
    await publisher.start()
    ledger = PointsLedger(store, publisher, "bench", sink)
    programme = Programme(
        store,
        ledger,
        None,  # type: ignore[arg-type]  # no enrolment here
        earning=EarningRules(),
        transfers=TransferRules(),
        eligibility=Eligibility(),
    )
    offers = Offers(
        store,
        ledger,
        OutboxRelay(store, publisher, "bench", ECODE_CLAIMS),
        OutboxRelay(store, publisher, "bench", CARD_REQUESTS),
        topic=sink,
    )
    handler = loyalty_handler(programme, Redemptions(store, ledger), MembershipEnds(programme, offers))
    done, applied, started = asyncio.Event(), 0, 0.0

    async def counting(evs: list) -> None:  # type: ignore[type-arg]
        nonlocal applied, started
        started = started or time.perf_counter()
        await handler(evs)
        applied += len(evs)
        if applied >= len(batch):
            done.set()

    consumer = EventConsumer(
        group, counting, service="bench", inbox=Inbox(redis, group.name, 3600), publisher=publisher
    )
    broker = KafkaBroker(ACCESS.bootstrap, security=ACCESS.faststream(), logger=None)
    consumer.subscribe(broker, max_records=BATCH, batch_timeout_ms=50, fetch_max_wait_ms=50)
    await broker.start()
    await done.wait()
    elapsed = time.perf_counter() - started
    await broker.stop()
    entries = await store[LEDGER].count_documents({"kind": "earn"})
    assert entries == len(batch), f"{entries} ledger entries for {len(batch)} events"
    await publisher.stop()
    await cleanup(store, redis)
    return len(batch) / elapsed


async def main() -> None:
    tune_gc()
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    numbers = members(args.members)
    results: dict[str, list[float]] = {"bare": [], "append": [], "loyalty": []}
    for round_no in range(args.rounds):
        kinds = ("bare", "append", "loyalty")
        for kind in kinds if round_no % 2 == 0 else reversed(kinds):
            tag = f"{kind}{uuid.uuid4().hex[:6]}"
            batch = events(args.events, numbers)
            if kind == "bare":
                rate = await bare_no_store(tag, batch)
            elif kind == "append":
                rate = await bare_append(tag, batch)
            else:
                rate = await loyalty(tag, batch, numbers)
            results[kind].append(rate)
            print(f"round {round_no + 1}: {kind:8} {rate:9,.0f} events/s   ({load()})", flush=True)

    def ratio(kind: str, base: str) -> float:
        return statistics.median(r / b for r, b in zip(results[kind], results[base], strict=True))

    median = {kind: statistics.median(rates) for kind, rates in results.items()}
    print(
        f"\n{args.events} TopupRecorded over {args.members} members, batches of {BATCH}, {args.rounds} rounds"
        f" (median rate, median of each round's ratio; {load()}):\n"
        f"  bare getmany + parse + commit (no store)             {median['bare']:9,.0f} events/s\n"
        f"  bare getmany + parse + insert_many entry-shaped      {median['append']:9,.0f} events/s   1.00x\n"
        f"  loyalty earning (ledger entries, PointsEarned out)   {median['loyalty']:9,.0f} events/s"
        f"   {ratio('loyalty', 'append'):.2f}x of the append loop (target >= 0.50x),"
        f" {ratio('loyalty', 'bare'):.3f}x of the no-store loop"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    asyncio.run(main())
