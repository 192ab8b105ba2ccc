"""Periodic jobs on real Redis: one replica at a time, and a failed run does not stop the job."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from servicekit.schedule import SCHEDULED_RUNS, LeasedJob

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
