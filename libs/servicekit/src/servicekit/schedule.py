"""Periodic jobs that one replica runs at a time: reconciliation, audits, renewals.

    job = LeasedJob(redis, "payment:reconcile", every=60)
    service.background(lambda: job.run_forever(reconcile_once))

Each run first takes a lease in Redis (redis-py's `Lock`: SET NX with an expiry, so a replica
that died holding it frees it by itself); the replicas that do not get it skip that run. The
lease is given back by one script that deletes it only while it still holds this run's token:
a run that outlived its lease never deletes the lease another replica took meanwhile. A failed
run is logged and counted (`scheduled_runs_total{job,result}`), and the job goes on at the next
interval.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEDULED_RUNS = Counter("scheduled_runs_total", "Runs of periodic jobs, by result", ["job", "result"])


class LeasedJob:
    def __init__(self, redis: Redis, name: str, *, every: float, lease_seconds: int | None = None) -> None:
        self.redis = redis
        self.name = name
        self.every = every
        self.lease_seconds = lease_seconds or max(30, int(every * 3))
        self.owner = secrets.token_hex(8)
        self._log = {"job": name}

    async def run_once(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """`work()` under the lease; None when another replica holds it."""
        lease = Lock(self.redis, f"{self.name}:lease", timeout=self.lease_seconds, thread_local=False)
        if not await lease.acquire(blocking=False, token=f"{self.owner}:{secrets.token_hex(4)}"):
            SCHEDULED_RUNS.labels(self.name, "skipped").inc()
            return None
        try:
            result = await work()
        finally:
            try:
                await lease.release()
            except LockError:
                log.warning(
                    "the run outlived its lease; another replica may have run too", extra={"job": self.name}
                )
        SCHEDULED_RUNS.labels(self.name, "ok").inc()
        return result

    async def run_forever(self, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.run_once(work)
            except Exception:
                SCHEDULED_RUNS.labels(self.name, "failed").inc()
                log.exception("scheduled job failed", extra={"job": self.name})
