"""The store catalogue: versioned in the store, served from memory, kept current via Redis.

Reads never touch the store. Each process holds the active catalogue version in memory
(a few thousand stores: ~2 MB) with a grid index for nearest-store lookups and folded text for
search. On each request it reads the active version's name from Redis (one GET, ~0.1 ms) and
reloads when it changed, from the compressed snapshot the import left in Redis (else from
the store). So an import is seen by every replica on its next request, and a Redis outage
only means serving the catalogue already in memory.

Decoding, validating and indexing a version is CPU work (about 0.3 s for 3 000 stores, seconds
for the 50 000 an import may hold): it runs in a worker thread, so the event loop keeps
answering (from the catalogue in memory) meanwhile.

Imports (`import_rows`) are all-or-nothing: the new version is written beside the old
(CHUNK stores per document) and counted, then the pointer document is moved in one write,
then the Redis keys, then every other version is deleted. A failure before the pointer
moves deletes the new version and changes nothing anyone sees. One import at a time (a
Redis lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import TypeAdapter
from pymongo.errors import DuplicateKeyError, PyMongoError
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from servicekit.errors import ApiError, unavailable
from servicekit.mongo import Store

from .domain.catalogue import StoreRow
from .domain.geo import GridIndex, map_url
from .domain.hours import WeekHours, is_open, parse_week, today
from .domain.text import fold, matches
from .store import ACTIVE, CATALOGUE, STORES

log = logging.getLogger(__name__)

CATALOGUE_STORES = Gauge(
    "stores_catalogue_stores", "Stores in the catalogue version this process serves", ["service"]
)
CATALOGUE_IMPORTS = Counter(
    "stores_catalogue_imports_total", "Catalogue imports, by result", ["service", "result"]
)
CATALOGUE_LOADS = Counter(
    "stores_catalogue_loads_total", "Catalogue versions loaded into memory, by source", ["service", "source"]
)

KEY_PREFIX = "stores:catalogue"  # Redis keys: <prefix>:active, <prefix>:import-lock, <prefix>:snapshot:<v>
# Stores per document of a version, packed (zlib-compressed JSON). FerretDB converts every
# field between BSON and PostgreSQL's JSONB: 3 000 stores as documents, or as nested lists,
# took 4-9 s to insert, read or count here; packed, a version is a few hundred KB of binary.
CHUNK = 1000
IMPORT_LOCK_SECONDS = 600  # one import at a time; a crashed importer's lock frees itself
RETRY_SECONDS = 2.0  # between store reads of a pointer Redis lacks / a version that failed to load

# Set KEYS[1] to ARGV[2] only if it still holds ARGV[1] ('' = absent): never roll back a
# pointer an import moved meanwhile.
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class Entry:
    """A store as served: its row, parsed hours, folded text; its view's static part is
    built the first time it is shown (most stores of a version never are by one process)."""

    __slots__ = ("_base", "haystack", "name_folded", "province_folded", "row", "week")

    def __init__(self, row: StoreRow) -> None:
        self.row = row
        self.week: WeekHours = parse_week(row.hours)
        self.name_folded = fold(row.name)
        self.province_folded = fold(row.province)
        self.haystack = f" {self.name_folded} {fold(row.address)} {fold(row.district)} {self.province_folded}"
        self._base: dict[str, Any] | None = None

    def _static_view(self) -> dict[str, Any]:
        if self._base is None:
            row = self.row
            base = row.model_dump(mode="json")
            base["map_url"] = map_url(row.lat, row.lon)
            base["tel"] = f"tel:{row.phone.replace(' ', '').replace('.', '')}" if row.phone else None
            self._base = base
        return self._base

    def view(self, now: datetime, distance_km: float | None = None) -> dict[str, Any]:
        out = {
            **self._static_view(),
            "open_now": is_open(self.week, now),
            "hours_today": today(self.week, now),
        }
        if distance_km is not None:
            out["distance_km"] = round(distance_km, 3)
        return out


class Snapshot:
    """One catalogue version in memory (immutable once built)."""

    def __init__(self, version: str | None, rows: list[StoreRow]) -> None:
        self.version = version
        self.entries = [Entry(r) for r in rows]
        self.by_id = {e.row.id: e for e in self.entries}
        self.index = GridIndex([(r.lat, r.lon) for r in rows])

    def nearest(
        self,
        lat: float,
        lon: float,
        *,
        limit: int,
        radius_km: float,
        now: datetime,
        service: str | None = None,
        open_now: bool = False,
    ) -> list[tuple[Entry, float]]:
        entries = self.entries

        def accept(n: int) -> bool:
            e = entries[n]
            return (service is None or service in e.row.services) and (not open_now or is_open(e.week, now))

        hits = self.index.nearest(lat, lon, limit, radius_km, accept if service or open_now else None)
        return [(entries[h.index], h.distance_km) for h in hits]

    def search(
        self, query: str, *, limit: int, offset: int = 0, province: str | None = None
    ) -> tuple[int, list[Entry]]:
        """Stores whose name/address/district/province hold every word of `query` (diacritics
        ignored): names holding the whole phrase first, then other texts holding it, by name."""
        folded = fold(query)
        wanted_province = fold(province) if province else None
        hits = [
            e
            for e in self.entries
            if matches(e.haystack, folded)
            and (wanted_province is None or e.province_folded == wanted_province)
        ]
        phrase = f" {folded}"

        def rank(e: Entry) -> tuple[int, str, str]:
            place = 0 if phrase in f" {e.name_folded}" else 1 if phrase in e.haystack else 2
            return place, e.name_folded, e.row.id

        hits.sort(key=rank)
        return len(hits), hits[offset : offset + limit]


_ROWS = TypeAdapter(list[StoreRow])


def _pack(rows: list[StoreRow]) -> bytes:
    return zlib.compress(_ROWS.dump_json(rows), 1)


def _unpack(blob: bytes) -> list[StoreRow]:
    return _ROWS.validate_json(zlib.decompress(blob))


def _unpack_chunks(docs: list[dict[str, Any]]) -> list[StoreRow]:
    return [r for d in docs for r in _unpack(d["packed"])]


def _chunk_documents(version: str, rows: list[StoreRow]) -> list[dict[str, Any]]:
    """A version's documents: CHUNK stores each, packed."""
    docs = []
    for chunk, start in enumerate(range(0, len(rows), CHUNK)):
        part = rows[start : start + CHUNK]
        docs.append(
            {
                "_id": f"{version}/{chunk:05d}",
                "version": version,
                "chunk": chunk,
                "count": len(part),
                "packed": _pack(part),
            }
        )
    return docs


class ImportConflict(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(409, "import_conflict", message)


class Catalogue:
    def __init__(
        self,
        store: Store,
        redis: Redis,
        *,
        service: str,
        snapshot_ttl_seconds: int = 7 * 24 * 3600,
        pointer_check_seconds: float = 30.0,
        recheck_seconds: float = 0.0,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.active_key = f"{prefix}:active"
        self.lock_key = f"{prefix}:import-lock"
        self.redis = redis
        self.service = service
        self.snapshot_ttl = snapshot_ttl_seconds
        self.pointer_check_seconds = pointer_check_seconds
        self.snapshot = Snapshot(None, [])
        self._loading = asyncio.Lock()
        self._store_checked_at = -RETRY_SECONDS
        self.recheck_seconds = recheck_seconds
        self._checked_at = -recheck_seconds
        self._failed: tuple[str, float] | None = None
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)
        CATALOGUE_STORES.labels(service).set(0)

    # -- reading -------------------------------------------------------------------------

    async def pointer(self) -> dict[str, Any] | None:
        return await self.store[CATALOGUE].find_one({"_id": ACTIVE})

    async def current(self) -> Snapshot:
        """The active catalogue, reloaded first if another process imported a new one (looked
        up at most every `recheck_seconds`: under load, requests share one Redis read)."""
        if time.monotonic() - self._checked_at < self.recheck_seconds:
            return self.snapshot
        self._checked_at = time.monotonic()
        version = await self._active_version()
        if version is None or version == self.snapshot.version:
            return self.snapshot
        if self._failed and self._failed[0] == version and time.monotonic() - self._failed[1] < RETRY_SECONDS:
            return self.snapshot
        if self._loading.locked():  # another request is loading it: answer from what we have
            return self.snapshot
        async with self._loading:
            if version != self.snapshot.version:
                try:
                    await self._load(version)
                except Exception:
                    if self.snapshot.version is None:
                        raise  # nothing to serve instead: the request answers 503
                    log.exception("catalogue version not loaded; serving the one in memory")
                    self._failed = (version, time.monotonic())
        return self.snapshot

    async def _active_version(self) -> str | None:
        try:
            raw = await self.redis.get(self.active_key)
        except RedisError as exc:
            log.warning(
                "catalogue pointer unreadable in Redis; serving the version in memory",
                extra={"error": repr(exc)},
            )
            return self.snapshot.version
        if isinstance(raw, bytes):
            return raw.decode()
        # Nothing in Redis: nothing imported yet, or Redis lost the key. Ask the store, not
        # on every request.
        if time.monotonic() - self._store_checked_at < RETRY_SECONDS:
            return self.snapshot.version
        self._store_checked_at = time.monotonic()
        try:
            pointer = await self.pointer()
        except PyMongoError:
            if self.snapshot.version is None:
                raise
            return self.snapshot.version
        if pointer is None:
            return None
        with contextlib.suppress(RedisError):
            await self._compare_and_set(keys=[self.active_key], args=["", pointer["version"]])
        return str(pointer["version"])

    async def _load(self, version: str) -> None:
        rows: list[StoreRow] = []
        source = "redis"
        try:
            blob = await self.redis.get(f"{self.prefix}:snapshot:{version}")
        except RedisError:
            blob = None
        if isinstance(blob, bytes):
            rows = await asyncio.to_thread(_unpack, blob)
        else:
            source = "store"
            docs = await self.store[STORES].find({"version": version}).sort("chunk", 1).to_list()
            rows = await asyncio.to_thread(_unpack_chunks, docs)
            if rows:
                await self._put_snapshot(version, rows)
        if not rows:
            # Deleted by an import that moved on meanwhile: keep serving, look again later.
            log.warning(
                "catalogue version has no stores; keeping the one in memory", extra={"version": version}
            )
            self._failed = (version, time.monotonic())
            return
        self._install(await asyncio.to_thread(Snapshot, version, rows))
        CATALOGUE_LOADS.labels(self.service, source).inc()
        log.info("catalogue loaded", extra={"version": version, "stores": len(rows), "source": source})

    def _install(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._failed = None
        CATALOGUE_STORES.labels(self.service).set(len(snapshot.entries))

    async def _put_snapshot(self, version: str, rows: list[StoreRow]) -> None:
        try:
            blob = await asyncio.to_thread(_pack, rows)
            await self.redis.set(f"{self.prefix}:snapshot:{version}", blob, ex=self.snapshot_ttl)
        except RedisError as exc:
            log.warning("could not cache the catalogue in Redis", extra={"error": repr(exc)})

    async def sync_pointer(self) -> None:
        """Make Redis name the version the store's pointer names (the store is the truth),
        unless an import moved it meanwhile."""
        seen = await self.redis.get(self.active_key)
        pointer = await self.pointer()
        if pointer is None:
            return
        seen_text = seen.decode() if isinstance(seen, bytes) else ""
        if seen_text != pointer["version"]:
            await self._compare_and_set(keys=[self.active_key], args=[seen_text, pointer["version"]])

    async def run_pointer_sync(self) -> None:
        """Background task: also loads the catalogue at start, before the first request."""
        while True:
            try:
                await self.sync_pointer()
                await self.current()
            except Exception:
                log.exception("catalogue pointer check failed")
            await asyncio.sleep(self.pointer_check_seconds)

    # -- importing -----------------------------------------------------------------------

    async def import_rows(self, rows: list[StoreRow], source: str) -> dict[str, Any]:
        # Released only while it still holds this import's token (redis-py's Lock): an import
        # that outlived the lock never frees the one the next import took.
        lock = Lock(self.redis, self.lock_key, timeout=IMPORT_LOCK_SECONDS, thread_local=False)
        try:
            if not await lock.acquire(blocking=False):
                raise ApiError(409, "import_in_progress", "another catalogue import is running; retry later")
        except RedisError as exc:
            raise unavailable("catalogue import needs Redis; try again shortly") from exc
        try:
            return await self._import(rows, source)
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("the import outlived its lock; another import may have run meanwhile")
            except RedisError:
                log.warning("import lock not released; it expires in 10 minutes")

    async def _import(self, rows: list[StoreRow], source: str) -> dict[str, Any]:
        previous = await self.pointer()
        version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        docs = await asyncio.to_thread(_chunk_documents, version, rows)
        try:
            await self.store.insert_all(STORES, docs)
            written = sum(
                d["count"]
                for d in await self.store[STORES].find({"version": version}, {"count": 1}).to_list()
            )
            if written != len(rows):
                raise RuntimeError(f"wrote {written} of {len(rows)} stores")
            await self._switch(previous, version, len(rows), source)
        except Exception:
            CATALOGUE_IMPORTS.labels(self.service, "failed").inc()
            log.exception(
                "catalogue import failed; the previous catalogue keeps serving", extra={"version": version}
            )
            try:
                await self.store.delete_where(STORES, {"version": version})
            except Exception:
                log.exception("could not delete the failed version; the next import will")
            raise
        CATALOGUE_IMPORTS.labels(self.service, "ok").inc()
        snapshot = await asyncio.to_thread(Snapshot, version, rows)
        await self._put_snapshot(version, rows)
        try:
            await self.redis.set(self.active_key, version)
            if previous:  # replicas load only the active version: the old copy is dead weight
                await self.redis.delete(f"{self.prefix}:snapshot:{previous['version']}")
        except RedisError:
            log.warning("new catalogue pointer not in Redis yet; replicas pick it up from the store")
        self._install(snapshot)
        # Every other version: the previous one, and any a crashed import left behind.
        removed = 0
        try:
            removed = await self.store.delete_where(STORES, {"version": {"$ne": version}})
        except Exception:
            log.exception("old catalogue versions not deleted; the next import will")
        log.info("catalogue imported", extra={"version": version, "stores": len(rows), "source": source})
        return {
            "version": version,
            "stores": len(rows),
            "previous_version": previous["version"] if previous else None,
            "removed_documents": removed,
        }

    async def _switch(self, previous: dict[str, Any] | None, version: str, count: int, source: str) -> None:
        """Move the pointer: one single-document write, conditional on the version it moves from."""
        fields = {
            "version": version,
            "previous_version": previous["version"] if previous else None,
            "stores": count,
            "source": source,
            "switched_at": datetime.now(UTC),
        }
        if previous is None:
            try:
                await self.store[CATALOGUE].insert_one({"_id": ACTIVE, **fields})
            except DuplicateKeyError as exc:
                raise ImportConflict("a catalogue was imported meanwhile") from exc
            return
        moved = await self.store[CATALOGUE].update_one(
            {"_id": ACTIVE, "version": previous["version"]}, {"$set": fields}
        )
        if moved.matched_count != 1:
            raise ImportConflict("a catalogue was imported meanwhile")
