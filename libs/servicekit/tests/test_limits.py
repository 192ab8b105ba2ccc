"""Limits on the real Redis: window budgets are all-or-none, tries are reserved before the
comparison and lock with back-off."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from servicekit.limits import Backoff, Budget, Scope, TryLimiter, WindowLimiter

pytestmark = pytest.mark.integration


def name() -> str:
    return f"test-limits-{uuid.uuid4().hex[:10]}"


async def test_a_request_refused_by_one_budget_spends_none_of_the_others(redis: Redis) -> None:
    limiter, key = WindowLimiter(redis), name()
    hour, day = Budget(f"{key}:hour", 2, 3600), Budget(f"{key}:day", 3, 86400)
    results = [await limiter.take([hour, day]) for _ in range(3)]
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].index == 0 and 3590 < results[2].retry_after <= 3600
    assert await redis.get(f"{key}:day") == b"2", "the refused request did not count against the day"


async def test_concurrent_requests_never_pass_a_budget(redis: Redis) -> None:
    limiter, key = WindowLimiter(redis), name()
    results = await asyncio.gather(*(limiter.take([Budget(key, 5, 60)]) for _ in range(30)))
    assert sum(r is None for r in results) == 5


async def test_checking_a_budget_counts_nothing_and_giving_back_makes_room(redis: Redis) -> None:
    limiter, key = WindowLimiter(redis), name()
    budget = Budget(key, 1, 60)
    assert await limiter.check([budget]) is None and await limiter.check([budget]) is None
    assert await limiter.take([budget]) is None
    assert await limiter.check([budget]) is not None
    await limiter.give_back([budget])
    assert await limiter.take([budget]) is None


async def test_parallel_tries_get_only_the_allowed_number_then_the_scope_is_locked(redis: Redis) -> None:
    tries = TryLimiter(redis, name(), Backoff(first_lock_seconds=30, longest_lock_seconds=60))
    scope = Scope("guesser", limit=3)
    results = await asyncio.gather(*(tries.reserve([scope]) for _ in range(10)))
    granted = [r for r in results if r is None]
    locks = [r for r in results if r is not None]
    assert len(granted) == 3 and len(locks) == 7
    assert sum(lock.new for lock in locks) == 1, "one try locked it; the others found it locked"
    assert all(lock.index == 0 and 0 < lock.seconds <= 30 for lock in locks)


async def test_each_lock_of_a_scope_lasts_twice_as_long_up_to_the_longest(redis: Redis) -> None:
    tries = TryLimiter(redis, name(), Backoff(first_lock_seconds=10, longest_lock_seconds=25))
    scope = Scope("guesser", limit=1)
    lengths = []
    for _ in range(3):
        assert await tries.reserve([scope]) is None
        locked = await tries.reserve([scope])
        assert locked is not None and locked.new
        lengths.append(locked.seconds)
        await redis.delete(tries.keys(scope)[1])  # the lock runs out; the strikes stay
    assert lengths == [10, 20, 25]


async def test_a_success_gives_its_try_back_or_forgets_the_scope(redis: Redis) -> None:
    tries = TryLimiter(redis, name(), Backoff())
    mine, everyone = Scope("mine", 2, forget_on_success=True), Scope("everyone", 2)
    for _ in range(2):
        assert await tries.reserve([mine, everyone]) is None
    await tries.release([mine, everyone])
    assert await redis.get(tries.keys(mine)[0]) is None, "forgotten"
    assert await redis.get(tries.keys(everyone)[0]) == b"1", "one try given back"
    assert await tries.locked([mine, everyone]) is None


async def test_a_locked_scope_is_reported_without_counting_a_try(redis: Redis) -> None:
    tries = TryLimiter(redis, name(), Backoff(first_lock_seconds=30))
    free, busy = Scope("free", 5), Scope("busy", 0)
    locked = await tries.reserve([free, busy])
    assert locked is not None and locked.index == 1
    assert await redis.get(tries.keys(free)[0]) is None, "a refused try counts nowhere"
    found = await tries.locked([free, busy])
    assert found is not None and (found.index, found.new) == (1, False)
