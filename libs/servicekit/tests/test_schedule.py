"""Periodic jobs on real Redis: one replica at a time, and a failed run does not stop the job."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from servicekit.schedule import SCHEDULED_RUNS, LeasedJob
from servicekit.testing import REDIS

pytestmark = pytest.mark.integration


async def test_of_replicas_running_one_job_at_once_only_one_runs_it(redis: Redis) -> None:
    name = f"test-job-{uuid.uuid4().hex[:6]}"
    replicas = [LeasedJob(redis, name, every=60) for _ in range(5)]
    running = 0
    ran = 0

    async def work() -> str:
        nonlocal running, ran
        running += 1
        assert running == 1, "two replicas ran the job at once"
        await asyncio.sleep(0.2)
        running -= 1
        ran += 1
        return "done"

    results = await asyncio.gather(*(r.run_once(work) for r in replicas))
    assert results.count("done") == 1 and results.count(None) == 4 and ran == 1
    assert await replicas[1].run_once(work) == "done", "the lease is released after the run"


async def test_a_failing_run_is_counted_and_the_job_runs_again(redis: Redis) -> None:
    name = f"test-job-{uuid.uuid4().hex[:6]}"
    job = LeasedJob(redis, name, every=0.05)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the store did not answer")

    succeeded = SCHEDULED_RUNS.labels(name, "ok")
    task = asyncio.create_task(job.run_forever(flaky))
    for _ in range(200):
        if succeeded._value.get() >= 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    assert SCHEDULED_RUNS.labels(name, "failed")._value.get() == 1
    assert succeeded._value.get() >= 2, "the job ran again after the failure"


class _LeaseTakenOverMidRelease(Redis):
    """A real Redis client whose every command touching `lease` while `armed` is followed at
    once by the lease expiring and another replica taking it: the worst moment for the
    expiry, whatever commands the release is made of."""

    lease = ""
    armed = False
    other: Redis | None = None

    async def execute_command(self, *args: object, **options: object) -> object:
        result = await super().execute_command(*args, **options)
        if self.armed and self.lease.encode() in [a.encode() if isinstance(a, str) else a for a in args]:
            self.armed = False
            assert self.other is not None
            await self.other.delete(self.lease)  # the lease ran out
            await self.other.set(self.lease, b"another-replica", ex=30)  # and was taken
        return result


async def test_a_run_that_outlived_its_lease_never_releases_the_lease_another_replica_took() -> None:
    name = f"test-job-{uuid.uuid4().hex[:6]}"
    client = _LeaseTakenOverMidRelease.from_url(REDIS)
    other = Redis.from_url(REDIS)
    client.lease, client.other = f"{name}:lease", other
    job = LeasedJob(client, name, every=60)

    async def work() -> str:
        client.armed = True  # from here on, the lease may run out between any two commands
        return "done"

    try:
        assert await job.run_once(work) == "done"
        assert await other.get(f"{name}:lease") == b"another-replica", "the other replica's lease is gone"
    finally:
        await other.delete(f"{name}:lease")
        await client.aclose()
        await other.aclose()
