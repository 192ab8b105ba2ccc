"""One promotion to N registered devices (default 1,000,000): notify's fan-out against a bare
sender pushing the same number of requests to the same push sandbox, in one run.

    python bench/notify_fanout.py [--devices 1000000] [--concurrency 256] [--keep]

- seeds N APNs devices (insert_many, 10k a batch) into a scratch database of its own and
  indexes FerretDB's tables (`infra.sh tune`, as `make up` does);
- starts a private push sandbox (HTTP/2 cleartext) on a free port;
- notify: a child process runs the service's FanOut (claims, bucket reads, pushes through the
  APNs adapter, checkpoints) on an `everyone` promotion until it is done;
- bare: a child process sends N APNs requests over one HTTP/2 client with the same
  concurrency, nothing else (the provider's limit as we can reach it);
- prints wall time, pushes/s, peak RSS of each child, store commands per 1,000 devices, and
  the ratio notify/bare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MONGODB = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def token_of(i: int) -> str:
    return f"{i:064x}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(db: str, devices: int) -> float:
    from notify_service.directory import device_id_for
    from notify_service.domain.audience import bucket_of
    from notify_service.store import INDEXES
    from servicekit.mongo import Store

    store = Store(MONGODB, db, app_name="bench-seed")
    await store.connect()
    await store.ensure_indexes(INDEXES)
    started = time.perf_counter()
    now = datetime.now(UTC)
    batch = 10_000
    for start in range(0, devices, batch):
        docs = []
        for i in range(start, min(devices, start + batch)):
            msisdn = f"849{i:08d}"
            docs.append(
                {"_id": device_id_for("apns", token_of(i)), "msisdn": msisdn, "bucket": bucket_of(msisdn),
                 "platform": "apns", "token": token_of(i), "locale": "vi", "registered_at": now}
            )  # fmt: skip
        await store.insert_all("devices", docs, chunk=batch)
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


async def notify_worker(db: str, push_url: str, concurrency: int) -> dict[str, float]:
    from prometheus_client import REGISTRY

    from mobi_contracts.events.notify import PromotionPublished, PromotionPublishedData
    from notify_service.directory import Directory
    from notify_service.fanout import FanOut, campaign_stats
    from notify_service.promotions import store_published
    from notify_service.push import Pusher
    from notify_service.settings import NotifySettings
    from notify_service.store import PROMOTIONS
    from servicekit.app import tune_gc
    from servicekit.mongo import Store
    from servicekit.redis_client import create_redis

    settings = NotifySettings(push_base_url=push_url, push_concurrency=concurrency, mongodb_db=db)
    store = Store(MONGODB, db, app_name="bench-notify")
    await store.connect()
    redis = create_redis(REDIS)
    fanout = FanOut(store, redis, Directory(store), Pusher(settings), settings)
    now = datetime.now(UTC)
    pid = f"bench-{uuid.uuid4().hex[:8]}"
    event = PromotionPublished.create(
        data=PromotionPublishedData(
            promotion_id=pid, title={"vi": "Khuyến mãi", "en": "Offer"}, body={"vi": "x", "en": "x"},
            deep_link="mymobifone://offers", valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=1), audience={"everyone": True},
        ),
        producer="bench", correlation_id=pid,
    )  # fmt: skip
    await store_published(store, [event])
    tune_gc()
    started = time.perf_counter()
    while True:
        await fanout.tick()
        await asyncio.gather(*fanout.running.values())
        doc = await store[PROMOTIONS].find_one({"_id": pid})
        if doc and doc["fanout"] == "done":
            break
    elapsed = time.perf_counter() - started
    stats = await campaign_stats(store, doc)
    ops = sum(
        s.value for m in REGISTRY.collect() if m.name == "store_operations" for s in m.samples
        if s.name == "store_operations_total" and s.labels.get("service") == "bench-notify"
    )  # fmt: skip
    await fanout.pusher.close()
    await redis.aclose()
    await store.close()
    return {"seconds": elapsed, "sent": stats["sent"], "failed": stats["failed"], "store_ops": ops,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


async def bare_worker(devices: int, push_url: str, concurrency: int) -> dict[str, float]:
    """The same APNs adapter and concurrency, fed from memory: no store, no audience, no
    checkpoints (what the provider and the HTTP/2 client allow)."""
    from notify_service.push import Outcome, Push, Pusher
    from notify_service.settings import NotifySettings

    pusher = Pusher(NotifySettings(push_base_url=push_url, push_concurrency=concurrency))
    sent = 0
    indexes = iter(range(devices))

    async def sender() -> None:  # `concurrency` of these keep every stream busy to the end
        nonlocal sent
        for i in indexes:
            push = Push(
                device_id=str(i),
                platform="apns",
                token=token_of(i),
                title="Offer",
                body="x",
                collapse_id="bare",
            )
            delivered = await pusher.send(push) is Outcome.SENT
            sent += delivered  # after the await: `sent += await ...` reads `sent` before it

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pusher.close()
    return {
        "seconds": elapsed,
        "sent": sent,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--worker", choices=["notify", "bare"])
    parser.add_argument("--db")
    parser.add_argument("--push-url")
    args = parser.parse_args()
    if args.worker == "notify":
        print(json.dumps(asyncio.run(notify_worker(args.db, args.push_url, args.concurrency))))
        return
    if args.worker == "bare":
        print(json.dumps(asyncio.run(bare_worker(args.devices, args.push_url, args.concurrency))))
        return

    db = f"bench_notify_{secrets.token_hex(4)}"
    port = free_port()
    sandbox = subprocess.Popen(
        [str(ROOT / ".venv/bin/push-sandbox")], env={**os.environ, "PUSH_SANDBOX_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    push_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{push_url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        print(f"seeding {args.devices:,} devices into {db} ...", flush=True)
        seeded = asyncio.run(seed(db, args.devices))
        # GIN indexes beside FerretDB's, as `make up` does: the bucket reads use them.
        subprocess.run([str(ROOT / "deploy/local/infra.sh"), "tune"], check=True, capture_output=True)
        print(f"seeded in {seeded:.1f} s ({args.devices / seeded:,.0f} docs/s)", flush=True)
        common = [
            "--devices",
            str(args.devices),
            "--concurrency",
            str(args.concurrency),
            "--push-url",
            push_url,
        ]
        bare = child("--worker", "bare", *common)
        httpx.post(f"{push_url}/sandbox/reset")
        notify = child("--worker", "notify", "--db", db, *common)
        delivered = httpx.get(f"{push_url}/sandbox/stats").json()["deliveries"]  # notify's run only
        print(f"\n{'':28}{'wall s':>10}{'pushes/s':>12}{'peak RSS MB':>14}")
        for name, r in (("bare HTTP/2 sender", bare), ("notify fan-out", notify)):
            print(f"{name:28}{r['seconds']:>10.1f}{r['sent'] / r['seconds']:>12,.0f}{r['rss_mb']:>14.0f}")
        ratio = (notify["sent"] / notify["seconds"]) / (bare["sent"] / bare["seconds"])
        print(f"\nnotify / bare: {ratio:.2f}x   sent {notify['sent']:,.0f} (sandbox counted {delivered:,}), "
              f"failed {notify['failed']:,.0f}, store commands {notify['store_ops']:,.0f} "
              f"({1000 * notify['store_ops'] / args.devices:.1f} per 1,000 devices)")  # fmt: skip
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if not args.keep:
            from pymongo import MongoClient

            MongoClient(MONGODB).drop_database(db)


if __name__ == "__main__":
    main()
