"""The catalogue on the real store and Redis: imports switch every replica at once, a failed
import changes nothing anyone sees, and Redis losing the pointer is repaired from the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.errors import ServerSelectionTimeoutError
from redis.asyncio import Redis

from servicekit.errors import ApiError
from servicekit.mongo import Store
from servicekit.redis_client import create_redis
from stores_service.catalogue import Catalogue
from stores_service.domain.catalogue import StoreRow
from stores_service.seed import demo_catalogue
from stores_service.store import INDEXES, STORES

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
DEMO = demo_catalogue()


def renamed(rows: list[StoreRow], suffix: str) -> list[StoreRow]:
    return [r.model_copy(update={"name": f"{r.name} {suffix}"}) for r in rows]


@pytest.fixture
async def replicas(store: Store, redis: Redis, unique: str) -> AsyncIterator[tuple[Catalogue, Catalogue]]:
    """Two processes' catalogues on one store and one Redis (keys of this test only)."""
    await store.ensure_indexes(INDEXES)
    prefix = f"test:{unique}:catalogue"
    yield (
        Catalogue(store, redis, service="tests", prefix=prefix),
        Catalogue(store, redis, service="tests", prefix=prefix),
    )
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def test_an_import_is_served_by_every_replica_on_its_next_request(
    replicas: tuple[Catalogue, Catalogue], store: Store, redis: Redis
) -> None:
    a, b = replicas
    first = await a.import_rows(DEMO[:400], source="test")
    assert (await b.current()).version == first["version"]
    assert len((await b.current()).entries) == 400
    second = await a.import_rows(renamed(DEMO[:300], "mới"), source="test")
    snapshot = await b.current()
    assert snapshot.version == second["version"]
    assert len(snapshot.entries) == 300 and snapshot.entries[0].row.name.endswith("mới")
    # Only the active version is left in the store and in Redis.
    left = {d["version"] for d in await store[STORES].find({}, {"version": 1}).to_list()}
    assert left == {second["version"]}
    assert not await redis.exists(f"{a.prefix}:snapshot:{first['version']}")
    assert await redis.exists(f"{a.prefix}:snapshot:{second['version']}")


async def test_a_failed_import_leaves_the_old_catalogue_serving_and_its_documents_gone(
    replicas: tuple[Catalogue, Catalogue], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    old = await a.import_rows(DEMO[:200], source="test")

    async def crash(*args: object) -> None:
        raise RuntimeError("store gone while switching")

    monkeypatch.setattr(a, "_switch", crash)
    with pytest.raises(RuntimeError):
        await a.import_rows(renamed(DEMO[:250], "hỏng"), source="test")
    for replica in (a, b):
        snapshot = await replica.current()
        assert snapshot.version == old["version"]
        assert len(snapshot.entries) == 200
    assert {d["version"] for d in await store[STORES].find({}, {"version": 1}).to_list()} == {old["version"]}
    assert (await a.pointer() or {})["version"] == old["version"]


async def test_a_second_import_while_one_runs_is_refused(replicas: tuple[Catalogue, Catalogue]) -> None:
    a, b = replicas
    results = await asyncio.gather(
        a.import_rows(DEMO[:300], source="one"),
        b.import_rows(DEMO[:300], source="two"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 1 and refused[0].code == "import_in_progress"
    assert sum(isinstance(r, dict) for r in results) == 1


async def test_redis_losing_the_pointer_falls_back_to_the_store_and_is_repaired(
    replicas: tuple[Catalogue, Catalogue], redis: Redis
) -> None:
    a, b = replicas
    imported = await a.import_rows(DEMO[:100], source="test")
    await redis.delete(a.active_key, f"{a.prefix}:snapshot:{imported['version']}")
    assert (await b.current()).version == imported["version"]  # from the store's pointer and documents
    assert (await redis.get(a.active_key)) == imported["version"].encode()


async def test_the_pointer_check_does_not_roll_back_a_newer_pointer(
    replicas: tuple[Catalogue, Catalogue], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = replicas
    old = await a.import_rows(DEMO[:100], source="test")
    stale_pointer = await a.pointer()

    async def racing_pointer() -> dict[str, object] | None:
        # An import moves Redis on after the check read it but the store read is older.
        await redis.set(a.active_key, "newer-version")
        return stale_pointer

    monkeypatch.setattr(a, "pointer", racing_pointer)
    await redis.set(a.active_key, "something-else")
    await a.sync_pointer()
    assert await redis.get(a.active_key) == b"newer-version"
    monkeypatch.undo()
    await redis.set(a.active_key, "lost")
    await a.sync_pointer()
    assert await redis.get(a.active_key) == old["version"].encode()


async def test_nearest_on_the_loaded_catalogue_respects_service_and_open_now(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    a, _ = replicas
    await a.import_rows(DEMO, source="test")
    snapshot = await a.current()
    # 10:00 in Vietnam: most stores are open; at 03:00 only night kiosks and 24-hour agents.
    morning = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    night = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    esim = snapshot.nearest(21.03, 105.85, limit=5, radius_km=50, now=morning, service="esim")
    assert len(esim) == 5 and all("esim" in e.row.services for e, _ in esim)
    at_night = snapshot.nearest(21.03, 105.85, limit=5, radius_km=50, now=night, open_now=True)
    assert at_night and all(e.view(night)["open_now"] for e, _ in at_night)
    assert all(e.row.type == "agent" for e, _ in at_night)


async def test_with_redis_unreachable_the_catalogue_in_memory_keeps_serving(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    a, _ = replicas
    imported = await a.import_rows(DEMO[:150], source="test")
    a.redis = create_redis("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        snapshot = await a.current()
        assert snapshot.version == imported["version"] and len(snapshot.entries) == 150
        assert snapshot.nearest(21.03, 105.85, limit=3, radius_km=50, now=NOW)
    finally:
        await a.redis.aclose()


async def test_a_replica_that_cannot_load_a_new_version_keeps_serving_its_own(
    replicas: tuple[Catalogue, Catalogue], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    old = await a.import_rows(DEMO[:120], source="test")
    assert (await b.current()).version == old["version"]

    async def store_down(version: str) -> None:
        raise ServerSelectionTimeoutError("store unreachable")

    monkeypatch.setattr(b, "_load", store_down)
    new = await a.import_rows(DEMO[:130], source="test")
    assert (await b.current()).version == old["version"]
    monkeypatch.undo()
    b._failed = None  # the retry pause is over
    assert (await b.current()).version == new["version"]
