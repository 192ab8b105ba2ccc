"""Decisions/s of the account ledger on VAS data-pack charges and loyalty rewards, against
top-ups (the baseline) on the same store, in one run.

Each kind goes through `LedgerService.apply` in batches of 500 (what the consumer hands it),
spread over the same subscribers, on a scratch database; Kafka only receives the answers.
A charge or a reward costs what a top-up does plus one read of the subscriber registry per
subscriber per batch (is the number still ours?), and a data pack a bucket in the document.

    python bench/ledger_grants.py [--events 1000] [--subscribers 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable

from account_service.ledger import LedgerService
from account_service.store import INDEXES, SUBSCRIBERS
from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.admin import ensure_topics
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import points_redeemed, topup_recorded, vas_charge_requested

ACCESS = KafkaAccess.local("bench")  # the broker authenticates every client (servicekit.kafka.access)
MONGO = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
BATCH = 500


def data_pack(number: str, n: int) -> AnyEvent:
    return vas_charge_requested(
        number, f"bench-{uuid.uuid4().hex}", 5_000, bucket_kb=1_048_576, code="D5", producer="bench"
    )


def airtime(number: str, n: int) -> AnyEvent:
    return points_redeemed(
        number,
        f"bench-{uuid.uuid4().hex}",
        points=100,
        catalog_code="AIR10",
        producer="bench",
        kind="airtime",
        amount_vnd=10_000,
    )


def topup(number: str, n: int) -> AnyEvent:
    return topup_recorded(number, 10_000, f"bench-{uuid.uuid4().hex}", producer="bench")


async def run(kind: str, make: Callable[[str, int], AnyEvent], count: int, subscribers: int) -> float:
    numbers = [f"8490{i:07d}" for i in range(subscribers)]
    store = Store(MONGO, f"bench_grants_{kind}", app_name="bench")
    await store.connect()
    await store.client.drop_database(store.db.name)
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_many([{"_id": n, "plan": "prepaid", "status": "active"} for n in numbers])
    sink = Topic(
        name="bench.grants.out",
        description="",
        events=(BalanceChanged, BalanceChangeRejected, RedemptionGranted, RedemptionRefused),
        producer="bench",
    )
    await ensure_topics(ACCESS, [sink])
    publisher = EventPublisher(ACCESS, "bench")
    await publisher.start()
    ledger = LedgerService(store, publisher, sink)
    # Money first, so every data-pack charge is paid (the same one top-up per subscriber).
    await ledger.apply([topup(n, 0) for n in numbers])
    events = [make(numbers[i % subscribers], i) for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        await ledger.apply(events[start : start + BATCH])
    elapsed = time.perf_counter() - started
    await publisher.stop()
    await store.client.drop_database(store.db.name)
    await store.close()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are shown")
    args = parser.parse_args()
    kinds = {
        "top-ups (baseline)": topup,
        "VAS data-pack charges": data_pack,
        "loyalty airtime rewards": airtime,
    }
    rates: dict[str, list[float]] = {label: [] for label in kinds}
    for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every kind
        for n, (label, make) in enumerate(kinds.items()):
            rates[label].append(await run(f"k{n}", make, args.events, args.subscribers))
    base = statistics.median(rates["top-ups (baseline)"])
    for label, measured in rates.items():
        median = statistics.median(measured)
        spread = f"{min(measured):.0f}-{max(measured):.0f}"
        print(f"{label:24} {median:8.0f} decisions/s (runs {spread})  {median / base:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
