"""The document store: MongoDB, or FerretDB 1.24 speaking its wire protocol.

Measured here (bench/store_backends.py) FerretDB differs from MongoDB in ways that shape
every hot path, so the few bulk operations services need go through this module.

Measured on FerretDB 1.24.2 over PostgreSQL 15 (pool_max_conns=200), pymongo 4.20 (README,
"Store calls: what is safe on FerretDB 1.24").

Safe on both servers:
- `insert_one`, `insert_many` (2 000 documents in 0.1 s); unique indexes are atomic, so "claim
  by inserting a unique key" is race-free on both, and so are deletes;
- `find` / `find_one` by `_id` or an indexed field's equality, `sort` + `limit`,
  `count_documents`, a simple `aggregate` ($match, $group);
- one-statement writes: `update_one`, `replace_one`, `delete_one`, `find_one_and_update`,
  and `update_many` / `delete_many` whatever they match; `create_index` one at a time.

Unsafe or wrong on FerretDB 1.24 (never in a service, and not in an operator's script):
- an update command with many statements (`bulk_write` of 200+ `UpdateOne`/`ReplaceOne` on
  existing documents, ordered or not; fewer when several run at once) wedges the whole
  server: the pool runs dry while each statement waits for another connection, and even
  `ping` hangs until FerretDB restarts (locally the supervisor restarts it);
- concurrent updates of ONE document lose writes (it reads, changes and rewrites the whole
  document without a lock): keep one writer per document (Kafka partition ownership, or a
  unique-insert claim for HTTP races), version writes (`save_versioned`), and decide races
  by unique inserts, not by conditional updates;
- `$push` with `$slice` and `$pull` with conditions are ignored without an error: compute
  the new value in the domain and `$set` it;
- `$in` and range filters are not pushed down to PostgreSQL: each such query scans the
  collection in FerretDB (find by `_id` one at a time instead: `find_by_ids`);
- `create_indexes` naming indexes that already exist panics the connection (AutoReconnect);
- refused: multi-document transactions, change streams, geo (2dsphere, $near), TTL indexes.

On FerretDB we therefore send single-document updates and finds by `_id`, a bounded number
at a time; on MongoDB one bulk_write / one `$in`. Every command is counted in
`store_operations_total{service,command,outcome}` (a pymongo command listener), so a
benchmark can report store operations per business operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError

from .metrics import STORE_OPERATIONS

log = logging.getLogger(__name__)

Doc = dict[str, Any]
T = TypeVar("T")

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Update:
    """One single-document update: filter, update spec, optional upsert."""

    filter: Mapping[str, Any]
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    upsert: bool = False


class _CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends (one per round trip to the store)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        return None

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        STORE_OPERATIONS.labels(self.service, event.command_name, "ok").inc()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        STORE_OPERATIONS.labels(self.service, event.command_name, "error").inc()


ORDERED_CHUNK = 100  # FerretDB 1.24 keeps an ordered insert ordered only this far (insert_run)


class Store:
    def __init__(self, url: str, database: str, *, write_concurrency: int = 8, app_name: str = "") -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url,
            appname=app_name or None,
            tz_aware=True,
            serverSelectionTimeoutMS=5000,
            # No reply in 2 minutes is an error, not a wait forever: a consumer stuck on a wedged
            # store connection outlived Kafka's max.poll.interval (5 min) and lost its partitions.
            socketTimeoutMS=120_000,
            maxPoolSize=50,
            event_listeners=[_CommandCounter(app_name or database)],
        )
        self.db: AsyncDatabase[Doc] = self.client[database]
        self.is_ferretdb = False
        self._gate = asyncio.Semaphore(write_concurrency)

    async def connect(self) -> None:
        info = await self.client.admin.command("buildInfo")
        self.is_ferretdb = "ferretdbVersion" in info
        log.info("store connected", extra={"ferretdb": self.is_ferretdb, "version": info.get("version")})

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    @property
    def answers_heartbeat(self) -> bool:
        """Whether the driver's monitor last reached the server (its `hello` heartbeat). A
        wedged FerretDB still answers it while every command hangs: a ping that times out
        while this holds is a wedge, not an outage."""
        servers = self.client.topology_description.server_descriptions().values()
        return any(server.is_server_type_known for server in servers)

    def __getitem__(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def ensure_indexes(self, indexes: Mapping[str, Sequence[IndexModel]]) -> None:
        """Create every listed collection (even with no index of its own, so its table exists
        before the platform tunes the store) and its indexes."""
        existing = set(await self.db.list_collection_names())
        for collection, models in indexes.items():
            if collection not in existing:
                with contextlib.suppress(CollectionInvalid):
                    await self.db.create_collection(collection)
            for model in models:
                # One at a time: FerretDB 1.24 panics on createIndexes naming several
                # indexes that all exist already (slice bounds out of range).
                await self.db[collection].create_indexes([model])

    async def bounded(self, work: Awaitable[T]) -> T:
        """Run one store call within the `write_concurrency` gate."""
        async with self._gate:
            return await work

    async def bounded_all(self, works: Iterable[Awaitable[T]]) -> list[T]:
        """Run store calls concurrently, at most `write_concurrency` at a time."""
        return list(await asyncio.gather(*(self.bounded(w) for w in works)))

    async def find_by_ids(self, collection: str, ids: Iterable[Any]) -> dict[Any, Doc]:
        """Documents by `_id`, missing ones absent from the result.

        On FerretDB one indexed find each, a bounded number at a time: its `$in` reads and
        decodes the whole collection (2,000 ids of 12,000 payments: 11.5 s, against about 2 s
        one by one)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        col = self.db[collection]
        if not self.is_ferretdb:
            return {doc["_id"]: doc async for doc in col.find({"_id": {"$in": wanted}})}
        found = await asyncio.gather(*(self.bounded(col.find_one({"_id": i})) for i in wanted))
        return {doc["_id"]: doc for doc in found if doc is not None}

    async def update_each(self, collection: str, updates: Sequence[Update]) -> int:
        """Apply single-document updates; returns how many matched (upserts count)."""
        if not updates:
            return 0
        col = self.db[collection]
        if not self.is_ferretdb:
            ops = [UpdateOne(u.filter, u.update, upsert=u.upsert) for u in updates]
            result = await col.bulk_write(ops, ordered=False)
            return result.matched_count + result.upserted_count
        results = await asyncio.gather(
            *(self.bounded(col.update_one(u.filter, u.update, upsert=u.upsert)) for u in updates)
        )
        return sum(r.matched_count + (1 if r.upserted_id is not None else 0) for r in results)

    async def insert_new(self, collection: str, docs: Sequence[Doc]) -> int:
        """Insert, skipping documents whose unique key exists. Returns how many were new."""
        if not docs:
            return 0
        try:
            result = await self.db[collection].insert_many(list(docs), ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = _duplicates_only(exc)
            return int(exc.details.get("nInserted", len(docs) - len(errors)))

    async def insert_fresh(self, collection: str, docs: Sequence[Doc]) -> list[Doc]:
        """Insert in one command, skipping documents whose unique key exists; the documents
        that were new (claims: each is decided by its own insert, whatever the others do)."""
        if not docs:
            return []
        try:
            await self.db[collection].insert_many(list(docs), ordered=False)
            return list(docs)
        except BulkWriteError as exc:
            taken = {error["index"] for error in _duplicates_only(exc)}
            return [doc for i, doc in enumerate(docs) if i not in taken]

    async def insert_run(self, collection: str, docs: Sequence[Doc]) -> int:
        """Insert in order, stopping at the first duplicate key; how many were inserted
        (everything before that duplicate: an unbroken run of the list).

        In commands of at most ORDERED_CHUNK documents, whatever the server (a store not yet
        `connect`ed does not know it is FerretDB): FerretDB inserts in chunks of 100, and after
        a chunk that failed it goes on with the next one (measured on 1.24: 300 documents, a
        duplicate at 150: 0-149 and 200-299 inserted, the error reported at 150). A ledger run
        crossing such a boundary had later decisions inserted on an earlier one that was
        refused: a gap in a subscriber's journal."""
        if not docs:
            return 0
        for start in range(0, len(docs), ORDERED_CHUNK):
            try:
                await self.db[collection].insert_many(list(docs[start : start + ORDERED_CHUNK]), ordered=True)
            except BulkWriteError as exc:
                return start + int(min(error["index"] for error in _duplicates_only(exc)))
        return len(docs)

    async def insert_all(self, collection: str, docs: Sequence[Doc], chunk: int = 2_000) -> int:
        """Insert new documents in chunks (one insert command each: FerretDB takes tens of
        thousands of documents a second this way); any error, duplicates included, raises."""
        for start in range(0, len(docs), chunk):
            await self.bounded(self.db[collection].insert_many(list(docs[start : start + chunk])))
        return len(docs)

    async def update_where(self, collection: str, query: Doc, update: Doc) -> int:
        """One update command for every matching document (a single statement: FerretDB takes
        it, while a bulk of many update statements wedges it); how many matched."""
        return int((await self.bounded(self.db[collection].update_many(query, update))).matched_count)

    async def delete_where(self, collection: str, query: Doc) -> int:
        """One delete command for every matching document (a single statement, unlike a bulk
        of updates, which wedges FerretDB)."""
        return int((await self.bounded(self.db[collection].delete_many(query))).deleted_count)

    async def claim(self, collection: str, key: str, **fields: Any) -> bool:
        """True for the first caller with this key, False for every other (atomic on both)."""
        try:
            await self.db[collection].insert_one({"_id": key, **fields})
            return True
        except DuplicateKeyError:
            return False


def _duplicates_only(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The write errors of a bulk insert, re-raising it unless every one is a duplicate key."""
    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
    if not errors or any(error.get("code") != DUPLICATE_KEY for error in errors):
        raise exc
    return errors


class Conflict(Exception):
    """The document changed since it was read (or already exists): reload and try again."""


async def save_versioned(
    store: Store, collection: str, doc_id: Any, rev: int, changes: Mapping[str, Any]
) -> None:
    """Write `changes` if the document is still at `rev`, and bump `rev`.

    Optimistic concurrency with plain `$set`: atomic on MongoDB, and the only update
    shape whose result is identical on FerretDB, which ignores `$slice` in `$push` and
    conditions in `$pull` without an error. Callers compute the new state in the domain.
    """
    result = await store[collection].update_one(
        {"_id": doc_id, "rev": rev}, {"$set": {**changes, "rev": rev + 1}}
    )
    if result.matched_count != 1:
        raise Conflict(f"{collection}/{doc_id} is no longer at rev {rev}")


async def insert_versioned(store: Store, collection: str, doc: Doc) -> None:
    try:
        await store[collection].insert_one({**doc, "rev": 1})
    except DuplicateKeyError as exc:
        raise Conflict(f"{collection}/{doc['_id']} already exists") from exc
