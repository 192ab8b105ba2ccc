"""Cost per operation of the Mongo-wire store, to choose FerretDB's backend and to design
hot paths. Run by `make bench-store` (starts a PostgreSQL-backed FerretDB beside the
SQLite one), or by hand:

    python bench/store_backends.py --url postgresql=mongodb://127.0.0.1:27017/ \
                                   --url sqlite=mongodb://127.0.0.1:27018/

Prints ops/s per operation and backend, and each backend's ratio to the first. The last
row is not a speed: how many of 100 concurrent $inc on one document survive (MongoDB: 100).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import AsyncMongoClient, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError

N = 300  # operations per measurement
DOCS = 20_000  # documents in the collection (scans show up as a cost that grows with this)
# About the size of a balance document with its outbox (~1 KB): a scan's cost depends on it.
PADDING = [{"id": f"e{i}", "topic": "account.events.v1", "value": "x" * 90} for i in range(8)]
# FerretDB 1.24 holds one backend connection per statement of an update command until the
# command ends, so a command with more statements than its pool (PostgreSQL 50, SQLite 100)
# deadlocks the server, and so do two concurrent commands of 32. Measured sequentially here.
UPDATE_CHUNK = 32
TIMEOUT_S = 120.0


async def rate(n: int, work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(work(), TIMEOUT_S)
    except TimeoutError:
        return float("nan")  # the server stopped answering: reported as "failed"
    except PyMongoError as exc:  # e.g. SQLite's "database is locked" under concurrent updates
        print(f"  failed: {str(exc)[-120:]}", file=sys.stderr)
        return float("nan")
    return n / (time.perf_counter() - started)


def concurrently(n: int, width: int, one: Callable[[int], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def run() -> None:
        gate = asyncio.Semaphore(width)

        async def guarded(i: int) -> None:
            async with gate:
                await one(i)

        await asyncio.gather(*(guarded(i) for i in range(n)))

    return run


def sequentially(n: int, one: Callable[[int], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def run() -> None:
        for i in range(n):
            await one(i)

    return run


async def measure(url: str, tune: str | None = None) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, maxPoolSize=32)
    db = client[f"bench_{uuid.uuid4().hex[:8]}"]
    col = db.accounts
    await col.create_index("msisdn")
    await col.insert_many(
        [
            {"_id": f"a{i}", "msisdn": f"8490{i:07d}", "main": 10**9, "applied": [], "outbox": PADDING}
            for i in range(DOCS)
        ]
    )
    for name in ("single", "ledger", "counter"):
        await db.create_collection(name)
    if tune:  # e.g. the platform's GIN indexes for FerretDB's filters on PostgreSQL
        proc = await asyncio.create_subprocess_shell(tune)
        if await proc.wait() != 0:
            raise RuntimeError(f"tune command failed: {tune}")

    def debit(i: int) -> Awaitable[Any]:
        return col.update_one(
            {"_id": f"a{i}", "main": {"$gte": 100}},
            {"$inc": {"main": -100}, "$push": {"applied": {"$each": [f"e{i}"], "$slice": -50}}},
        )

    async def chunked_updates() -> None:
        for start in range(0, N, UPDATE_CHUNK):
            ops = [
                UpdateOne({"_id": f"a{i}"}, {"$inc": {"main": -1}})
                for i in range(start, min(start + UPDATE_CHUNK, N))
            ]
            await col.bulk_write(ops, ordered=False)

    async def inserts_in_one_call() -> None:
        await db.ledger.bulk_write([InsertOne({"_id": f"l{i}", "k": i}) for i in range(N)], ordered=False)

    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("insert_one", sequentially(N, lambda i: db.single.insert_one({"_id": i}))),
        ("insert_many (one call)", inserts_in_one_call),
        ("find_one by _id", sequentially(N, lambda i: col.find_one({"_id": f"a{i}"}))),
        ("find_one by _id, 8 concurrent", concurrently(N, 8, lambda i: col.find_one({"_id": f"a{i}"}))),
        ("find_one by indexed field", sequentially(N, lambda i: col.find_one({"msisdn": f"8490{i:07d}"}))),
        (
            "find _id $in 32 (per id)",
            sequentially(
                N // 32,
                lambda i: col.find({"_id": {"$in": [f"a{j}" for j in range(i * 32, i * 32 + 32)]}}).to_list(),
            ),
        ),
        ("conditional $inc+$push", sequentially(N, debit)),
        ("conditional $inc+$push, 8 concurrent", concurrently(N, 8, debit)),
        (
            "find_one_and_update",
            sequentially(
                N,
                lambda i: col.find_one_and_update(
                    {"_id": f"a{i}"}, {"$inc": {"main": 5}}, return_document=ReturnDocument.AFTER
                ),
            ),
        ),
        (f"bulk_write UpdateOne x{UPDATE_CHUNK}", chunked_updates),
    ]
    results: dict[str, float] = {}
    for name, work in cases:
        n = N // 32 * 32 if "$in" in name else N
        results[name] = await rate(n, work)
        print(f"  {url} {name}: {results[name]:,.0f}/s", file=sys.stderr, flush=True)

    await db.counter.insert_one({"_id": "c", "n": 0})
    await asyncio.gather(*(db.counter.update_one({"_id": "c"}, {"$inc": {"n": 1}}) for _ in range(100)))
    doc = await db.counter.find_one({"_id": "c"})
    results["concurrent $inc kept, of 100"] = float(doc["n"] if doc else 0)
    await client.drop_database(db.name)
    await client.close()
    return results


def ratio_of(value: float, base: float) -> float:
    return value / base if base == base and base else float("nan")  # nan: hung


def fmt(v: float) -> str:
    return "failed" if v != v else f"{v:,.0f}"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", action="append", required=True, help="name=mongodb://...")
    parser.add_argument(
        "--tune", action="append", default=[], help="name=command run after the data is loaded"
    )
    args = parser.parse_args()
    named = [tuple(u.split("=", 1)) for u in args.url]
    tunes = dict(t.split("=", 1) for t in args.tune)
    table = {name: await measure(url, tunes.get(name)) for name, url in named}
    names = [n for n, _ in named]
    print(f"\nops/s, {N} operations each, {DOCS} documents in the collection")
    print(
        f"{'operation':40}"
        + "".join(f"{n:>12}" for n in names)
        + "".join(f"{n + '/' + names[0]:>22}" for n in names[1:])
    )
    for op in table[names[0]]:
        base = table[names[0]][op]
        ratio = "".join(f"{ratio_of(table[n][op], base):>21.2f}x" for n in names[1:])
        print(f"{op:40}" + "".join(f"{fmt(table[n][op]):>12}" for n in names) + ratio)


if __name__ == "__main__":
    asyncio.run(main())
