"""Card top-ups from the provider's notification to the credited balance, through the real
platform (gateway, payment service, provider sandbox, Kafka, account service).

One payer tops up many numbers (the "top up another number" flow), so each payment credits
its own subscriber, as a real burst does. Payments are created first (not timed), then paid
at the sandbox N at a time; the sandbox notifies the payment service as the provider would.

Time split, per payment, from the sandbox's notification attempt, the payment service's
receipt time (TopupRecorded.data.recorded_at) and Kafka record times:
  notification  the IPN round trip as the provider sees it
  to handler    provider sends -> the payment service's handler starts: the provider's HTTP
                client, nginx and uvicorn's queue (the provider's own side included)
  settle+relay  handler starts -> TopupRecorded appended: verify, settle (one insert with its
                outbox), publish
  kafka hop     TopupRecorded appended -> the account consumer has it (BalanceChanged created)
  account       BalanceChanged created -> written and appended to Kafka (balance credited)
  total         provider sends -> BalanceChanged appended
  total (ours)  the payment service's handler starts -> BalanceChanged appended

Store operations per payment: every command the services send to the store is counted
(`store_operations_total`, a pymongo command listener); the bench reads both services'
counters around the creation phase and around the timed phase (pay -> credited), and prints
the commands per payment of each.

    python bench/payment_flow.py [--concurrency 50] [--runs 50,2000] [--usage-rate 0]

`--usage-rate N`: while the top-ups are paid and credited, the operator's charging system
(`ocs-mediation`, an outside party) sends N `UsageRecorded` a second on network.usage.v1 for
the subscribers being topped up, so the account consumer credits top-ups while it applies
usage (the issue's "usage records arriving at half the ledger's measured capacity").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
from mobi_contracts.topics import NETWORK_USAGE
from servicekit.internal_keys import caller_headers
from servicekit.kafka.access import KafkaAccess

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")
ACCOUNT = os.environ.get("ACCOUNT_URL", "http://127.0.0.1:8101")
PAYMENT = os.environ.get("PAYMENT_URL", "http://127.0.0.1:8103")
# The operators' tools call internal routes as "ops" (local key unless OPS_INTERNAL_KEY is set).
OPS_HEADERS = caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None)
PROVIDER = os.environ.get("PROVIDER_URL", "http://127.0.0.1:8192")
ACCESS = KafkaAccess.local("ops")  # the broker authenticates every client (servicekit.kafka.access)
PAYER = "84901234567"
STAGES = ("notification", "to handler", "settle+relay", "kafka hop", "account", "total", "total (ours)")
CARD = "4111111111111111"  # sandbox: Visa, approved, no 3-D Secure


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watcher:
    """Collects payment and account events from Kafka while the run goes on."""

    def __init__(self) -> None:
        self.topups: dict[str, tuple[str, float]] = {}  # payment id -> (TopupRecorded event id, append ms)
        self.credits: dict[str, tuple[float, float]] = {}  # cause event id -> (created ms, append ms)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            "payment.events.v1",
            "account.events.v1",
            **ACCESS.aiokafka(),
            auto_offset_reset="latest",
            group_id=f"bench-watch-{uuid.uuid4().hex[:6]}",
        )
        await consumer.start()
        try:
            while not consumer.assignment():
                await asyncio.sleep(0.05)
            await consumer.seek_to_end()
            for tp in consumer.assignment():
                await consumer.position(tp)
            self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        self._take(r)
        finally:
            await consumer.stop()

    def _take(self, record: Any) -> None:
        event = json.loads(record.value)
        if event["event_type"] == "TopupRecorded" and event["data"].get("payment_id"):
            received = datetime.fromisoformat(event["data"]["recorded_at"]).timestamp() * 1000
            self.topups[event["data"]["payment_id"]] = (event["event_id"], received, record.timestamp)
        elif event["event_type"] == "BalanceChanged" and event["data"]["cause_event_type"] == "TopupRecorded":
            created = datetime.fromisoformat(event["occurred_at"]).timestamp() * 1000
            self.credits[event["data"]["cause_event_id"]] = (created, record.timestamp)


async def login(gateway: str) -> dict[str, str]:
    carrier = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=gateway, transport=carrier, trust_env=False) as client:
        r = await client.post("/api/v1/auth/header-login", headers={"X-MSISDN": PAYER})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def create(client: httpx.AsyncClient, auth: dict[str, str], target: str) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/me/topups/card",
        json={"amount_vnd": 10_000, "method": "international", "target_msisdn": target},
        headers=auth | {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"},
    )
    r.raise_for_status()
    result: dict[str, Any] = r.json()
    return result


async def store_operations() -> dict[str, float]:
    """Commands each service has sent to the store so far (by command name, summed)."""
    totals: dict[str, float] = {}
    async with httpx.AsyncClient(trust_env=False) as client:
        for name, base in (("account", ACCOUNT), ("payment", PAYMENT)):
            text = (await client.get(f"{base}/metrics")).text
            totals[name] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("store_operations_total{")
            )
    return totals


def per_payment(before: dict[str, float], after: dict[str, float], payments: int) -> dict[str, float]:
    return {name: (after[name] - before[name]) / payments for name in before}


async def provision(targets: list[str], concurrency: int) -> None:
    """The numbers topped up must be subscriptions (the directory decides, not the prefix)."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=ACCOUNT, headers=OPS_HEADERS, trust_env=False) as client:

        async def one(msisdn: str) -> None:
            async with gate:
                r = await client.put(
                    f"/internal/v1/subscribers/{msisdn}", json={"name": "Bench", "plan": "prepaid"}
                )
                r.raise_for_status()

        await asyncio.gather(*(one(t) for t in targets))


async def usage_feed(targets: list[str], rate: int, stop: asyncio.Event, sent: list[int]) -> None:
    """The charging system's feed: `rate` small data sessions a second, in 10 sends a second."""
    producer = AIOKafkaProducer(**KafkaAccess.local("ocs-mediation").aiokafka(), acks="all", linger_ms=5)
    await producer.start()
    try:
        per_tick = max(1, rate // 10)
        while not stop.is_set():
            tick = time.perf_counter()
            for _ in range(per_tick):
                number = random.choice(targets)
                event = UsageRecorded.new(
                    subject=number,
                    producer="ocs-mediation",
                    correlation_id="bench-usage",
                    data=UsageRecordedData(
                        usage_id=f"bench-{uuid.uuid4().hex}",
                        kind="data",
                        quantity=64,
                        unit="kilobytes",
                        charge_vnd=0,
                        started_at=datetime.now().astimezone(),
                    ),
                )
                await producer.send(NETWORK_USAGE.name, event.model_dump_json().encode(), key=number.encode())
                sent[0] += 1
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
        await producer.flush()
    finally:
        await producer.stop()


async def run(payments: int, concurrency: int, usage_rate: int = 0) -> dict[str, list[float]]:
    # The bench's own address (127.0.0.3) is exempt from the gateway's per-client rate limit.
    bench = httpx.AsyncHTTPTransport(
        local_address="127.0.0.3", limits=httpx.Limits(max_connections=concurrency)
    )
    watcher = Watcher()
    watch = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.ready.wait(), 30)
    auth = await login(GATEWAY)
    targets = ["8477" + f"{random.randrange(10**7):07d}" for _ in range(payments)]
    await provision(targets, concurrency)
    async with (
        httpx.AsyncClient(base_url=GATEWAY, transport=bench, timeout=60, trust_env=False) as client,
        httpx.AsyncClient(base_url=PROVIDER, timeout=60, trust_env=False) as provider,
    ):
        gate = asyncio.Semaphore(concurrency)

        async def limited(coro: Any) -> Any:
            async with gate:
                return await coro

        before_create = await store_operations()
        started = await asyncio.gather(*(limited(create(client, auth, t)) for t in targets))
        before_pay = await store_operations()
        stop_usage, usage_sent = asyncio.Event(), [0]
        feed = (
            asyncio.create_task(usage_feed(targets, usage_rate, stop_usage, usage_sent))
            if usage_rate
            else None
        )
        t0 = time.perf_counter()
        paid = await asyncio.gather(
            *(
                limited(provider.post("/sandbox/pay", json={"payment_url": p["payment_url"], "card": CARD}))
                for p in started
            )
        )
        assert all(r.status_code == 200 for r in paid), [r.text for r in paid if r.status_code != 200][:3]
        ids = [p["payment_id"] for p in started]
        await wait_for_credits(watcher, ids, timeout=300)
        elapsed = time.perf_counter() - t0
        stop_usage.set()
        if feed is not None:
            await feed
        await asyncio.sleep(1.0)  # the bookkeeping that follows a credit (outbox marks, landed marks)
        after = await store_operations()
        notes = (await provider.get("/sandbox/notifications")).json()
    watch.cancel()
    result = split(watcher, ids, notes, elapsed)
    if usage_rate:
        result["usage records sent during the run, per second"] = [usage_sent[0] / elapsed]
    for name, ops in per_payment(before_create, before_pay, payments).items():
        result[f"store ops/payment, creating ({name})"] = [ops]
    for name, ops in per_payment(before_pay, after, payments).items():
        result[f"store ops/payment, paying to credited ({name})"] = [ops]
    return result


async def wait_for_credits(watcher: Watcher, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [i for i in ids if i in watcher.topups and watcher.topups[i][0] in watcher.credits]
        if len(done) == len(ids):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"only {len(done)} of {len(ids)} credited in {timeout}s")


def split(
    watcher: Watcher, ids: list[str], notes: list[dict[str, Any]], elapsed: float
) -> dict[str, list[float]]:
    first_attempt = {}
    for note in notes:
        if note["txn_ref"] in ids and note["kind"] == "genuine" and note["attempts"]:
            a = note["attempts"][0]
            first_attempt[note["txn_ref"]] = (
                datetime.fromisoformat(a["at"]).timestamp() * 1000,
                a["elapsed_ms"],
            )
    out: dict[str, list[float]] = {k: [] for k in STAGES}
    for pid in ids:
        sent_ms, ipn_ms = first_attempt[pid]
        event_id, received, topup_appended = watcher.topups[pid]
        credit_created, credit_appended = watcher.credits[event_id]
        out["notification"].append(ipn_ms)
        out["to handler"].append(received - sent_ms)
        out["settle+relay"].append(topup_appended - received)
        out["kafka hop"].append(credit_created - topup_appended)
        out["account"].append(credit_appended - credit_created)
        out["total"].append(credit_appended - sent_ms)
        out["total (ours)"].append(credit_appended - received)
    out["throughput"] = [len(ids) / elapsed]
    return out


def report(payments: int, concurrency: int, r: dict[str, list[float]]) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg()[:2])
    print(
        f"\n{payments} card top-ups, {concurrency} at a time: {r['throughput'][0]:.1f} credited/s"
        f" (load {load})"
    )
    for key in (k for k in r if k.startswith("usage records")):
        print(f"  {key}: {r[key][0]:.0f}")
    print(f"  {'stage (ms)':14} {'p50':>8} {'p99':>8} {'max':>8}")
    for stage in STAGES:
        v = r[stage]
        print(f"  {stage:14} {statistics.median(v):8.1f} {pct(v, 0.99):8.1f} {max(v):8.1f}")
    for key in sorted(k for k in r if k.startswith("store ops")):
        print(f"  {key:48} {r[key][0]:6.2f}")
    for stage in ("total", "total (ours)"):
        verdict = "met" if pct(r[stage], 0.99) < 500 else "NOT met"
        print(f"  target: {stage} p99 < 500 ms at 50 concurrent -> {verdict}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", default="50,2000", help="payments per run, comma separated")
    parser.add_argument("--usage-rate", type=int, default=0, help="UsageRecorded per second meanwhile")
    args = parser.parse_args()
    for payments in (int(n) for n in args.runs.split(",")):
        report(payments, args.concurrency, await run(payments, args.concurrency, args.usage_rate))


if __name__ == "__main__":
    asyncio.run(main())
