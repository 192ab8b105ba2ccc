"""Points transfers per second through the gateway, with p50/p99, against the loyalty service
called directly, in the same run (rounds alternate so drift hits both).

Each of `--senders` members sends 10 points at a time to its own recipient, `--concurrency`
requests in flight in all (so several from one sender at once: they queue on the sender's
points, as a storm from one member would). Requests come from 127.0.0.3, which the local
gateway exempts from per-client rate limits (RATE_LIMIT_EXEMPT_CIDRS). Members are created
for the run: subscribers provisioned at the account service, wallets with points written
straight into the loyalty store (the bench measures transfers, not enrolment).

    python bench/loyalty_transfers.py [--senders 20] [--transfers 400] [--concurrency 16] [--rounds 2]

At the end every sender's and recipient's points are checked: nothing lost, nothing doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from loyalty_service.domain.wallet import Wallet, earn, to_document
from loyalty_service.ledger import Decision, PointsLedger
from loyalty_service.settings import LoyaltySettings
from loyalty_service.store import WALLETS
from servicekit.internal_keys import caller_headers
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")
LOYALTY = os.environ.get("LOYALTY_URL", "http://127.0.0.1:8104")
ACCOUNT = os.environ.get("ACCOUNT_URL", "http://127.0.0.1:8101")
OPS = caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None)
START_POINTS = 1_000_000


async def members(count: int) -> list[tuple[str, str]]:
    """(msisdn, access token) of `count` fresh members with START_POINTS each."""
    numbers = [f"8478{random.randrange(10**7):07d}" for _ in range(count)]
    settings = LoyaltySettings()
    store = Store(settings.mongodb_url, settings.database_name, app_name="bench")
    await store.connect()
    ledger = PointsLedger(store, EventPublisher(settings.kafka_access, "bench"), "bench")
    joined = datetime.now(UTC) - timedelta(days=1)
    tokens = []
    carrier = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        httpx.AsyncClient(base_url=ACCOUNT, trust_env=False) as account,
        httpx.AsyncClient(base_url=GATEWAY, transport=carrier, trust_env=False) as phone,
    ):
        for n in numbers:
            r = await account.put(
                f"/internal/v1/subscribers/{n}", json={"name": "Bench", "plan": "prepaid"}, headers=OPS
            )
            r.raise_for_status()
            await store.claim(WALLETS, n, **to_document(Wallet(msisdn=n, enrolled_at=joined)))

            def seed(w: Wallet) -> Decision:
                return Decision("earn", earn(w, START_POINTS, datetime.now(UTC), 12), {"source": "bench"})

            await ledger.append(n, f"earn:bench:{n}", seed, relay=False)
            r = await phone.post("/api/v1/auth/header-login", headers={"X-MSISDN": n})
            r.raise_for_status()
            tokens.append(r.json()["access_token"])
    await store.close()
    return list(zip(numbers, tokens, strict=True))


async def run(
    base: str, pairs: list[tuple[tuple[str, str], str]], transfers: int, concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.3", retries=0)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, transport=transport, limits=limits, timeout=30, trust_env=False
    ) as client:

        async def one(i: int) -> None:
            nonlocal failures
            (_sender, token), recipient = pairs[i % len(pairs)]
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{uuid.uuid4().hex}"}
            async with gate:
                started = time.perf_counter()
                r = await client.post(
                    "/api/v1/me/loyalty/transfers",
                    json={"to_msisdn": recipient, "points": 10},
                    headers=headers,
                )
                latencies.append(time.perf_counter() - started)
            if r.status_code != 201:
                failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(transfers)))
        elapsed = time.perf_counter() - started
    return transfers / elapsed, latencies, failures


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def points(base: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        r = await client.get("/api/v1/me/loyalty", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        return int(r.json()["points"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--transfers", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    people = await members(args.senders * 2)
    senders, recipients = people[: args.senders], people[args.senders :]
    pairs = [(s, r[0]) for s, r in zip(senders, recipients, strict=True)]
    results: dict[str, list[tuple[float, list[float], int]]] = {"direct": [], "gateway": []}
    for round_no in range(args.rounds):
        order = ("direct", "gateway") if round_no % 2 == 0 else ("gateway", "direct")
        for kind in order:
            result = await run(
                LOYALTY if kind == "direct" else GATEWAY, pairs, args.transfers, args.concurrency
            )
            results[kind].append(result)
            rate, lat, failed = result
            print(
                f"round {round_no + 1}: {kind:8} {rate:7.1f} transfers/s  p50 {pct(lat, 0.5):6.1f} ms"
                f"  p99 {pct(lat, 0.99):7.1f} ms  failed {failed}",
                flush=True,
            )
    ok = sum(args.transfers - f for runs in results.values() for _, _, f in runs)
    sent = [START_POINTS - await points(LOYALTY, t) for _, t in senders]
    received = [await points(LOYALTY, t) - START_POINTS for _, t in recipients]
    assert sum(sent) == sum(received) == 10 * ok, (sum(sent), sum(received), 10 * ok)
    print(
        f"\n{args.transfers} transfers of 10 points per run, {args.senders} senders, {args.concurrency} in flight, "
        f"{args.rounds} rounds (median):"
    )
    for kind in ("direct", "gateway"):
        runs = results[kind]
        print(
            f"  {kind:8} {statistics.median(r for r, _, _ in runs):7.1f} transfers/s"
            f"  p50 {statistics.median(pct(lat, 0.5) for _, lat, _ in runs):6.1f} ms"
            f"  p99 {statistics.median(pct(lat, 0.99) for _, lat, _ in runs):7.1f} ms"
        )
    ratio = statistics.median(g[0] / d[0] for g, d in zip(results["gateway"], results["direct"], strict=True))
    print(f"  gateway / direct {ratio:.2f}x; points conserved: {sum(sent)} sent = {sum(received)} received")


if __name__ == "__main__":
    asyncio.run(main())
