"""One renewal run over N due subscriptions (default 100,000), through Kafka to the account
service and back, against a bare baseline in the same run.

VAS path (the services' own code, in this process, on scratch databases and topics): the
renewal pass claims the N charges (unordered insert_many, 2,000 at a time), appends the next
schedule entries and publishes N `VasChargeRequested`; the account service's ledger consumer
debits each once and answers `BalanceChanged`; the VAS consumer turns the answers into consent
entries and `VasCharged` receipts. Timed from the start of the pass to the N-th receipt.

Baseline: the same number of messages through the same broker and the same VAS store writes,
with no service logic: a bare aiokafka producer sends N requests, a bare `getmany` loop
inserts the claim and schedule documents (insert_many) and answers each, a second loop inserts
the consent documents. The account's own work (a balance read and write per subscriber) has
no counterpart in the baseline; its share is reported apart.

    python bench/vas_renewals.py [--subscriptions 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker

from account_service.domain.balances import Balances, to_document
from account_service.ledger import LedgerService
from account_service.store import BALANCES, SUBSCRIBERS
from account_service.store import INDEXES as ACCOUNT_INDEXES
from mobi_contracts import AnyEvent, ConsumerGroup, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangedData, BalanceChangeRejected
from mobi_contracts.events.vas import VasChargeRequested, VasChargeRequestedV2
from mobi_contracts.topics import ACCOUNT_EVENTS, VAS_EVENTS
from servicekit.app import tune_gc
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.admin import ensure_topics
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.redis_client import create_redis
from vas_service.domain.catalog import DEMO_VAS
from vas_service.domain.slots import schedule_entry
from vas_service.main import Parts, assemble
from vas_service.renewals import WATERMARK
from vas_service.settings import VasSettings
from vas_service.store import CONSENTS, INDEXES, RUNS, SCHEDULE

ACCESS = KafkaAccess.local("bench")  # the broker authenticates every client (servicekit.kafka.access)
MONGO = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHUNK = 2000
ROOT = Path(__file__).resolve().parent.parent


def tune_store() -> None:
    """GIN indexes beside FerretDB's own (as `make up` does): without them every find by _id
    scans its table (see the README, "What the store taught us")."""
    subprocess.run([str(ROOT / "deploy/local/infra.sh"), "tune"], check=True, capture_output=True)


def numbers(n: int) -> list[str]:
    return [f"8479{i:07d}" for i in range(n)]


async def seed(vas: Parts, account: Store, n: int, due: datetime) -> None:
    item = next(i for i in DEMO_VAS if i.code == "MCLIP")
    started = due - timedelta(days=1)
    for first in range(0, n, 10_000):
        part = numbers(n)[first : first + 10_000]
        await account[SUBSCRIBERS].insert_many(
            [{"_id": m, "plan": "prepaid", "status": "active"} for m in part]
        )
        await account[BALANCES].insert_many(
            [{"_id": m, **to_document(Balances(msisdn=m, main=10_000_000)), "rev": 1} for m in part]
        )
        templates = [
            {
                "subscription_id": f"sub-B{m}",
                "msisdn": m,
                "code": item.code,
                "name": item.name_vi,
                "item_kind": "vas",
                "price_vnd": item.price_vnd,
                "period_days": 1,
                "grants": [],
                "auto_renew": True,
                "started_at": started + timedelta(seconds=i % 50),
            }
            for i, m in enumerate(part)
        ]
        entries = [schedule_entry(t, 1, timedelta(hours=24)) for t in templates]
        await vas.chains.store.insert_all(SCHEDULE, entries)
    await vas.chains.store[RUNS].insert_one({"_id": WATERMARK, "minute_at": due - timedelta(minutes=1)})


def consumer_of(
    group: ConsumerGroup, handler: Any, redis: Any, publisher: EventPublisher, broker: KafkaBroker
) -> None:
    consumer = EventConsumer(
        group, handler, service="bench", inbox=Inbox(redis, group.name, 3600), publisher=publisher
    )
    consumer.subscribe(broker, max_records=500, batch_timeout_ms=50, fetch_max_wait_ms=50)


def stand_in_answers(events: list[AnyEvent]) -> list[AnyEvent]:
    """What the account service answers to charges it can pay, without its ledger."""
    return [
        BalanceChanged.new(
            subject=e.subject,
            producer="bench-account",
            correlation_id=e.correlation_id,
            causation_id=str(e.event_id),
            data=BalanceChangedData(
                entry_id=f"vas:{e.data.charge_id}:main",
                account="main",
                unit="vnd",
                delta=-e.data.amount_vnd,
                balance_after=1_000_000,
                reason="vas_charge",
                cause_event_id=str(e.event_id),
                cause_event_type="VasChargeRequested",
            ),
        )
        for e in events
        if isinstance(e, VasChargeRequested | VasChargeRequestedV2)
    ]


async def vas_path(n: int, run: str, stand_in: bool) -> dict[str, float]:
    # The services' own code publishes here under their names (the bench's Kafka principal
    # writes the bench.* topics); the stand-in account answers as "bench-account".
    vas_topic = Topic(
        name=f"bench.{run}.vas", description="", events=VAS_EVENTS.events, producer="vas-service"
    )
    acct_topic = Topic(
        name=f"bench.{run}.account",
        description="",
        events=ACCOUNT_EVENTS.events,
        producer="account-service",
        also_produced_by=("bench-account",),
    )
    ledger_group = ConsumerGroup(
        name=f"bench-{run}-account", topics=(vas_topic,), handles=(VasChargeRequested, VasChargeRequestedV2)
    )
    answers_group = ConsumerGroup(
        name=f"bench-{run}-vas", topics=(acct_topic,), handles=(BalanceChanged, BalanceChangeRejected)
    )
    await ensure_topics(ACCESS, [vas_topic, acct_topic, ledger_group.dead_letter, answers_group.dead_letter])
    vas_store = Store(MONGO, f"bench_vas_{run}", app_name="bench-vas")
    acct_store = Store(MONGO, f"bench_account_{run}", app_name="bench-account")
    redis = create_redis(REDIS)
    publisher = EventPublisher(ACCESS, "bench")
    broker = KafkaBroker(ACCESS.bootstrap, security=ACCESS.faststream(), logger=None)
    try:
        for store, indexes in ((vas_store, INDEXES), (acct_store, ACCOUNT_INDEXES)):
            await store.connect()
            await store.ensure_indexes(indexes)
        await publisher.start()
        vas = assemble(
            VasSettings(service_name="bench", renewal_chunk=CHUNK), vas_store, publisher, redis, vas_topic
        )
        renewals = vas.renewals
        due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
        print(f"seeding {n:,} subscribers and schedule entries ...", flush=True)
        await seed(vas, acct_store, n, due)
        tune_store()
        ledger = LedgerService(acct_store, publisher, topic=acct_topic)
        account_busy = [0.0]
        answered = [0]
        done = asyncio.Event()

        async def account(events: list[AnyEvent]) -> None:
            started = time.perf_counter()
            if stand_in:
                await publisher.publish(acct_topic.name, stand_in_answers(events))
            else:
                await ledger.apply(events)
            account_busy[0] += time.perf_counter() - started

        async def answers(events: list[AnyEvent]) -> None:
            await vas.answers.on_answers(events)
            answered[0] += sum(1 for e in events if isinstance(e, BalanceChanged | BalanceChangeRejected))
            if answered[0] >= n:
                done.set()

        consumer_of(ledger_group, account, redis, publisher, broker)
        consumer_of(answers_group, answers, redis, publisher, broker)
        await broker.start()
        await asyncio.sleep(3)  # group joins
        tune_gc()
        print("renewal pass ...", flush=True)
        started = time.perf_counter()
        stats = await renewals.run_once(due + timedelta(seconds=59))
        pass_s = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), timeout=1800)
        total = time.perf_counter() - started
        receipts = await vas_store[CONSENTS].count_documents({"action": "charged"})
        assert stats.get("charged") == n, stats
        assert receipts == n, receipts
        return {"pass": pass_s, "e2e": total, "account": account_busy[0]}
    finally:
        await broker.stop()
        await publisher.stop()
        await redis.aclose()
        for store in (vas_store, acct_store):
            await store.client.drop_database(store.db.name)
            await store.close()
        await delete_topics(
            [vas_topic.name, acct_topic.name, ledger_group.dead_letter.name, answers_group.dead_letter.name]
        )


async def baseline(n: int, run: str) -> float:
    """N requests out, the same inserts, N answers back, N consent inserts: no service logic."""
    out_topic, back_topic = f"bench.{run}.base-out", f"bench.{run}.base-back"
    await ensure_topics(
        ACCESS, [Topic(name=t, description="", events=(), producer="bench") for t in (out_topic, back_topic)]
    )
    store = Store(MONGO, f"bench_vasbase_{run}", app_name="bench-base")
    await store.connect()
    for name in ("claims", "schedule", "consents"):
        await store.db.create_collection(name)
    tune_store()
    producer = AIOKafkaProducer(**ACCESS.aiokafka(), acks="all", enable_idempotence=True, linger_ms=2)
    await producer.start()
    now = datetime.now(UTC)
    payload = orjson.dumps(
        {"charge_id": "x" * 24, "amount_vnd": 3000, "at": now.isoformat(), "pad": "p" * 700}
    )

    async def relay(topic: str, group: str, write: str, answer: str | None) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            **ACCESS.aiokafka(),
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        seen = 0
        try:
            while seen < n:
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                records = [r for part in batch.values() for r in part]
                if not records:
                    continue
                docs = [{"_id": f"{r.partition}:{r.offset}", "v": r.value, "at": now} for r in records]
                await store[write].insert_many(docs, ordered=False)
                if write == "claims":  # the pass also appends the next schedule entry
                    await store["schedule"].insert_many([dict(d) for d in docs], ordered=False)
                if answer:
                    futures = [await producer.send(answer, r.value, key=r.key) for r in records]
                    await asyncio.gather(*futures)
                await consumer.commit()
                seen += len(records)
        finally:
            await consumer.stop()

    try:
        tasks = [
            asyncio.create_task(relay(out_topic, f"bench-{run}-base1", "claims", back_topic)),
            asyncio.create_task(relay(back_topic, f"bench-{run}-base2", "consents", None)),
        ]
        await asyncio.sleep(3)
        started = time.perf_counter()
        for first in range(0, n, CHUNK):
            futures = [
                await producer.send(out_topic, payload, key=f"84{i:09d}".encode())
                for i in range(first, min(n, first + CHUNK))
            ]
            await asyncio.gather(*futures)
        await asyncio.gather(*tasks)
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await store.client.drop_database(store.db.name)
        await store.close()
        await delete_topics([out_topic, back_topic])


async def delete_topics(names: list[str]) -> None:
    admin = AIOKafkaAdminClient(**ACCESS.aiokafka(), client_id="bench-cleanup")
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument(
        "--stand-in-account",
        action="store_true",
        help="answer every charge at once instead of the account service's ledger (the VAS side alone)",
    )
    args = parser.parse_args()
    n = args.subscriptions
    run = uuid.uuid4().hex[:8]
    base = await baseline(n, run)
    print(
        f"baseline: {n:,} messages out and back + the same inserts in {base:.1f} s ({n / base:,.0f}/s)",
        flush=True,
    )
    vas = await vas_path(n, run, args.stand_in_account)
    print(
        f"VAS renewals: {n:,} due subscriptions\n"
        f"  renewal pass (claims, schedule appends, {n:,} requests published): {vas['pass']:.1f} s "
        f"({n / vas['pass']:,.0f}/s)\n"
        f"  end to end, pass start to the last receipt: {vas['e2e']:.1f} s ({n / vas['e2e']:,.0f} renewals/s)\n"
        f"  of which the account side ({'stand-in' if args.stand_in_account else 'ledger'}) was busy "
        f"{vas['account']:.1f} s\n"
        f"  ratio (renewals/s vs baseline messages/s): {base / vas['e2e']:.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
