"""Who works a fan-out unit: a process's liveness in Redis and its fenced claims.

A process keeps a liveness key (`notify:fanout:owner:<owner>`, `fanout_owner_ttl_seconds`)
renewed by a heartbeat of its own, independent of pushing. Units of a claimer whose key has
expired (it died, or stalled longer than the key lives) are claimed again by others with the
next generation. A claimer is fenced (`Fence.check`, before each chunk): every renewal asks
Redis whether the key was still there, and finding it gone means the process was presumed
dead, so every unit it held is lost to it (`epoch`); and a unit whose next generation was
claimed is someone else's. A stalled worker that wakes up therefore stops at its next chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from servicekit.mongo import Store

from .store import CLAIMS

log = logging.getLogger(__name__)


class Draining(Exception):
    """The process is stopping: a unit ends at its last checkpoint, another process resumes it."""


class LostUnit(Exception):
    """Another worker claimed the unit (this one was presumed dead): stop pushing it."""


def owner_key(owner: str) -> str:
    return f"notify:fanout:owner:{owner}"


class Liveness:
    def __init__(self, redis: Redis, owner: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl = ttl_seconds
        self.epoch = 0  # raised when the key lapsed: units claimed before are lost
        self._alive = False
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._keep_alive(), name="fanout:heartbeat")

    async def stop(self) -> None:
        """The process is leaving: others may take its units at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self.redis.delete(owner_key(self.owner))

    async def _keep_alive(self) -> None:
        every = max(0.2, self.ttl / 5)
        while True:
            try:
                await self.renew()
            except Exception:
                log.exception("fan-out liveness renewal failed")
            await asyncio.sleep(every)

    async def renew(self) -> None:
        """Renew the key; finding it gone means this process was presumed dead (a stall longer
        than the key's life): every unit it was working on may have been taken over."""
        previous = await self.redis.set(owner_key(self.owner), "1", ex=self.ttl, get=True)
        if previous is None and self._alive:
            self.lapsed()
        self._alive = True

    def lapsed(self) -> None:
        self.epoch += 1
        log.warning("fan-out liveness lapsed; the units in progress are left to others")

    async def still_alive(self) -> bool:
        if await self.redis.exists(owner_key(self.owner)):
            return True
        self.lapsed()  # presumed dead right now: the heartbeat has not run since
        return False

    async def alive_among(self, owners: list[str]) -> set[str]:
        if not owners:
            return set()
        answers = await self.redis.mget([owner_key(o) for o in owners])
        return {o for o, a in zip(owners, answers, strict=True) if a is not None}


class Fence:
    """A claimed unit's right to push, checked before each chunk."""

    def __init__(
        self,
        liveness: Liveness,
        store: Store,
        draining: Callable[[], bool],
        claim: tuple[str, str, int],
        epoch: int,
    ) -> None:
        pid, unit, gen = claim
        self.liveness = liveness
        self.store = store
        self.draining = draining
        self.next_claim = f"{pid}:{unit}:{gen + 1}"
        self.epoch = epoch  # the liveness epoch when the unit was claimed

    async def check(self) -> None:
        if self.draining():
            raise Draining
        if self.liveness.epoch != self.epoch or not await self.liveness.still_alive():
            raise LostUnit(self.next_claim)
        if await self.store[CLAIMS].find_one({"_id": self.next_claim}, {"_id": 1}) is not None:
            raise LostUnit(self.next_claim)
