"""Nearest-store lookups: queries/s and p50/p99 through the nginx gateway on the active
(seeded) catalogue, against a brute-force scan of the same catalogue, in the same run.

1. The active catalogue is read from the store, as the service reads it.
2. Correctness: answers through the gateway are compared with a full scan (every store
   measured) for the first queries; any difference is reported.
3. Through the gateway (wrk, a copy of the platform's gateway on its own port with this
   machine exempt from the per-client rate limit, as bench/api_latency.py does), rotating
   over the same query points: 1 in 5 asks for open stores offering eSIM.
4. The lookup alone, per query in this process: the service's grid search against a
   brute-force scan of every store (same filters, same answers).
5. A brute-force scan that also reads the catalogue from the store for each query (no
   in-memory catalogue, no grid): what the lookup would cost without either.

    python bench/stores_nearest.py [--seconds 10] [--connections 16] [--queries 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from api_latency import BENCH_GATEWAY_PORT, _ms, start_gateway

from servicekit.mongo import Store
from servicekit.redis_client import create_redis
from stores_service.catalogue import Catalogue, Snapshot
from stores_service.domain.geo import brute_force
from stores_service.domain.hours import is_open
from stores_service.seed import PROVINCES
from stores_service.settings import StoresSettings

LIMIT, RADIUS = 10, 50.0
STORES = os.environ.get("STORES_URL", "http://127.0.0.1:8106")


def query_points(count: int) -> list[dict[str, object]]:
    """Where phones ask from: mostly around district centres, some anywhere on the mainland."""
    rng = random.Random(2026)
    centres = [(lat, lon) for *_, districts in PROVINCES for _, lat, lon in districts]
    queries: list[dict[str, object]] = []
    for n in range(count):
        if n % 10 < 8:
            lat, lon = rng.choice(centres)
            lat, lon = lat + rng.gauss(0, 0.04), lon + rng.gauss(0, 0.04)
        else:
            lat, lon = rng.uniform(9.0, 22.5), rng.uniform(104.5, 108.5)
        q: dict[str, object] = {
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "limit": LIMIT,
            "radius_km": RADIUS,
        }
        if n % 5 == 4:
            q.update(service="esim", open_now="true")
        queries.append(q)
    return queries


def full_scan(snapshot: Snapshot, q: dict[str, object], now: datetime) -> list[str]:
    points = [(e.row.lat, e.row.lon) for e in snapshot.entries]
    accept = None
    if q.get("service"):

        def accept(n: int) -> bool:
            e = snapshot.entries[n]
            return "esim" in e.row.services and is_open(e.week, now)

    hits = brute_force(points, float(q["lat"]), float(q["lon"]), LIMIT, RADIUS, accept)  # type: ignore[arg-type]
    return [snapshot.entries[h.index].row.id for h in hits]


def grid(snapshot: Snapshot, q: dict[str, object], now: datetime) -> list[str]:
    hits = snapshot.nearest(
        float(q["lat"]),  # type: ignore[arg-type]
        float(q["lon"]),  # type: ignore[arg-type]
        limit=LIMIT,
        radius_km=RADIUS,
        now=now,
        service="esim" if q.get("service") else None,
        open_now=bool(q.get("open_now")),
    )
    return [e.row.id for e, _ in hits]


def timed(fn, snapshot: Snapshot, queries: list[dict[str, object]], now: datetime) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(snapshot, q, now)
        times.append(time.perf_counter() - t)
    return summary(times)


def summary(times: list[float]) -> dict[str, float]:
    """Queries/s and p50/p99 in ms of per-query times in seconds."""
    times = sorted(times)
    return {
        "qps": len(times) / sum(times),
        "p50": times[len(times) // 2] * 1000,
        "p99": times[int(len(times) * 0.99)] * 1000,
    }


async def load_snapshot(settings: StoresSettings) -> Snapshot:
    store = Store(settings.mongodb_url, settings.database_name, app_name="bench")
    await store.connect()
    redis = create_redis(settings.redis_url)
    snapshot = await Catalogue(store, redis, service="bench").current()
    await redis.aclose()
    await store.close()
    if not snapshot.entries:
        sys.exit("no active catalogue: run `stores-seed` (make up does)")
    return snapshot


async def store_scans(
    settings: StoresSettings, queries: list[dict[str, object]], now: datetime
) -> dict[str, float]:
    """Read the active version from the store and scan it, per query."""
    store = Store(settings.mongodb_url, settings.database_name, app_name="bench")
    await store.connect()
    redis = create_redis(settings.redis_url)
    times = []
    for q in queries:
        t = time.perf_counter()
        catalogue = Catalogue(store, redis, service="bench", prefix="bench:none")  # nothing cached
        pointer = await catalogue.pointer()
        await catalogue._load(str(pointer["version"]))  # type: ignore[index]
        full_scan(catalogue.snapshot, q, now)
        times.append(time.perf_counter() - t)
    await redis.delete(*[k async for k in redis.scan_iter("bench:none:*")] or ["bench:none:x"])
    await redis.aclose()
    await store.close()
    return summary(times)


def wrk_paths(
    gateway: str, queries: list[dict[str, object]], seconds: int, connections: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        paths = ",\n".join(f'"/api/v1/stores/nearest?{urlencode(q)}"' for q in queries)
        script.write(
            f"paths = {{\n{paths}\n}}\ni = 0\n"
            "request = function()\n  i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
        )
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, gateway],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(script.name)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} failed responses\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE)}
    return {"qps": rps, "p50": pct["50"], "p99": pct["99"]}


def service_cpu_seconds() -> float:
    """The stores service's own CPU time (its /metrics), to tell its cost from the machine's load."""
    text = httpx.get(f"{STORES}/metrics", timeout=10).text
    return float(re.search(r"^process_cpu_seconds_total (\S+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def line(name: str, r: dict[str, float]) -> str:
    return f"  {name:44} {r['qps']:10,.0f} q/s   p50 {r['p50']:8.3f} ms   p99 {r['p99']:8.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument(
        "--check", type=int, default=200, help="queries compared with a full scan via the gateway"
    )
    parser.add_argument("--store-scans", type=int, default=10)
    args = parser.parse_args()
    settings = StoresSettings()
    snapshot = asyncio.run(load_snapshot(settings))
    queries = query_points(args.queries)
    print(
        f"catalogue {snapshot.version}: {len(snapshot.entries)} stores; {len(queries)} query points",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        gateway_proc = start_gateway(Path(tmp))
        gateway = f"http://127.0.0.1:{BENCH_GATEWAY_PORT}"
        try:
            wrong = 0
            with httpx.Client(base_url=gateway, trust_env=False, timeout=10) as client:
                for q in queries[: args.check]:
                    now = datetime.now(UTC)
                    got = [s["id"] for s in client.get("/api/v1/stores/nearest", params=q).json()["items"]]
                    if got != full_scan(snapshot, q, now) and got != full_scan(
                        snapshot, q, datetime.now(UTC)
                    ):
                        wrong += 1
            print(f"gateway answers equal to a full scan: {args.check - wrong}/{args.check}", flush=True)
            wrk_paths(gateway, queries, 2, args.connections)  # warm up
            cpu_before = service_cpu_seconds()
            through_gateway = wrk_paths(gateway, queries, args.seconds, args.connections)
            cpu_per_request = (service_cpu_seconds() - cpu_before) / (through_gateway["qps"] * args.seconds)
        finally:
            gateway_proc.terminate()
            gateway_proc.wait(timeout=10)

    now = datetime.now(UTC)
    in_grid = timed(grid, snapshot, queries, now)
    in_scan = timed(full_scan, snapshot, queries, now)
    from_store = asyncio.run(store_scans(settings, queries[: args.store_scans], now))
    print(
        f"\nGET /api/v1/stores/nearest (limit {LIMIT}, radius {RADIUS:g} km), "
        f"{len(snapshot.entries)} stores, {args.connections} connections, {args.seconds}s:\n"
        + line("through the gateway (service, end to end)", through_gateway)
        + f"\n  service CPU per request {cpu_per_request * 1000:.2f} ms (one process; load average "
        + f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores during the run)"
        + "\nthe lookup alone, one core, per query:\n"
        + line("grid search (the service's)", in_grid)
        + "\n"
        + line("brute-force scan of every store", in_scan)
        + "\n"
        + line(f"brute force reading the store each time (x{args.store_scans})", from_store)
        + f"\n  grid / brute-force scan: {in_grid['qps'] / in_scan['qps']:.1f}x queries/s"
        + f"\n  gateway end to end / brute-force scan alone: {through_gateway['qps'] / in_scan['qps']:.2f}x"
    )


if __name__ == "__main__":
    main()
