"""Limits kept in Redis, each checked and counted in one Lua step so that concurrent requests
cannot slip past them.

- `WindowLimiter`: fixed-window budgets ("5 feedback messages an hour and 20 a day", "10 codes
  per number an hour"). A request is counted against every budget it names, or, when any of
  them is used up, against none: a request refused by one limit spends nobody's budget.
- `TryLimiter`: attempts at a secret (a code, a password, a scratch-card PIN). A try is
  *reserved* (counted) before the secret is compared, so twenty parallel guesses get the
  allowed five, not twenty; a success gives its try back. A scope past its limit is locked,
  for longer each time it is locked again (back-off), and stays locked whatever is presented.

The `limits` package was weighed: its async Redis strategies count one limit per call, so a
request refused by the second of two limits has already spent the first, and it has no
reserve-then-give-back or lock-out. Both are a few lines of Lua here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .errors import too_many, unavailable

# KEYS: the budgets' counters. ARGV[1]: '1' to count, '0' to check only; then per budget its
# limit and window. Returns {0, 0}, or {i, seconds until budget i has room again}.
_TAKE = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[2 * i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[2 * i + 1]) end
    return {i, ttl}
  end
end
if ARGV[1] == '1' then
  for i = 1, #KEYS do
    if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 1]) end
  end
end
return {0, 0}
"""

_GIVE_BACK = """
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
"""


@dataclass(frozen=True)
class Budget:
    """At most `limit` uses of `key` per window of `window_seconds` (the window starts with
    the first use)."""

    key: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class Over:
    """The budget (its position in the call) that had no room, and when it will."""

    index: int
    retry_after: int


class WindowLimiter:
    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    async def take(self, budgets: Sequence[Budget]) -> Over | None:
        """Count one use against every budget, or, if any is used up, against none."""
        return await self._run(budgets, count=True)

    async def require(
        self,
        budgets: Sequence[Budget],
        *,
        code: str = "rate_limited",
        message: str = "too many requests; try again later",
    ) -> None:
        """`take`, for a route: a used-up budget is a 429 with Retry-After, Redis unreachable a
        503 (a limit that cannot be checked is not waved through)."""
        try:
            over = await self.take(budgets)
        except RedisError as exc:
            raise unavailable("cannot check the request limits right now") from exc
        if over is not None:
            raise too_many(code, message, over.retry_after)

    async def check(self, budgets: Sequence[Budget]) -> Over | None:
        """The first budget that is used up, counting nothing."""
        return await self._run(budgets, count=False)

    async def give_back(self, budgets: Sequence[Budget]) -> None:
        await self._give_back(keys=[b.key for b in budgets])

    async def _run(self, budgets: Sequence[Budget], *, count: bool) -> Over | None:
        if not budgets:
            return None
        args: list[int | str] = ["1" if count else "0"]
        for budget in budgets:
            args += [budget.limit, budget.window_seconds]
        index, seconds = await self._take(keys=[b.key for b in budgets], args=args)
        return Over(int(index) - 1, int(seconds)) if index else None


# KEYS: three per scope (failures, lock, strikes). ARGV[1..4]: failure window, first lock,
# longest lock, how long strikes are remembered; ARGV[4 + s]: scope s's limit. Returns {0, 0};
# {s, seconds} when scope s was already locked; {-s, seconds} when this try locked it.
_RESERVE = """
local n = #KEYS / 3
for s = 1, n do
  local t = redis.call('TTL', KEYS[s * 3 - 1])
  if t > 0 then return {s, t} end
end
for s = 1, n do
  local fails = KEYS[s * 3 - 2]
  if tonumber(redis.call('GET', fails) or '0') >= tonumber(ARGV[4 + s]) then
    local strikes = redis.call('INCR', KEYS[s * 3])
    redis.call('EXPIRE', KEYS[s * 3], ARGV[4])
    local lock = math.min(tonumber(ARGV[2]) * 2 ^ (strikes - 1), tonumber(ARGV[3]))
    redis.call('SET', KEYS[s * 3 - 1], '1', 'EX', lock)
    redis.call('DEL', fails)
    return {-s, lock}
  end
end
for s = 1, n do
  if redis.call('INCR', KEYS[s * 3 - 2]) == 1 then redis.call('EXPIRE', KEYS[s * 3 - 2], ARGV[1]) end
end
return {0, 0}
"""

# A reserved try that succeeded was no failure. KEYS: three per scope; ARGV[s]: '1' to forget
# scope s's failures and strikes (the owner got in from there), '0' to give its try back.
_RELEASE = """
for s = 1, #KEYS / 3 do
  if ARGV[s] == '1' then
    redis.call('DEL', KEYS[s * 3 - 2], KEYS[s * 3])
  elseif tonumber(redis.call('GET', KEYS[s * 3 - 2]) or '0') > 0 then
    redis.call('DECR', KEYS[s * 3 - 2])
  end
end
return 1
"""

_LOCKED = """
for s = 1, #KEYS do
  local t = redis.call('TTL', KEYS[s])
  if t > 0 then return {s, t} end
end
return {0, 0}
"""


@dataclass(frozen=True)
class Backoff:
    """Failures count for `window_seconds`; a scope past its limit is locked for
    `first_lock_seconds`, twice as long each time it is locked again while its strikes are
    remembered, at most `longest_lock_seconds`."""

    window_seconds: int = 3600
    first_lock_seconds: int = 60
    longest_lock_seconds: int = 3600
    strikes_remembered_seconds: int = 24 * 3600


@dataclass(frozen=True)
class Scope:
    """Who the tries are counted for (e.g. `otp:<number>:<client>`), and how many may fail.
    `forget_on_success`: a success forgets the scope's failures and strikes instead of giving
    one try back."""

    name: str
    limit: int
    forget_on_success: bool = False


@dataclass(frozen=True)
class Locked:
    """The scope (its position in the call) that is locked, for how long, and whether this
    try is what locked it."""

    index: int
    seconds: int
    new: bool


class TryLimiter:
    def __init__(self, redis: Redis, prefix: str, backoff: Backoff) -> None:
        self.prefix = prefix
        self.backoff = backoff
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._locked = redis.register_script(_LOCKED)

    def keys(self, scope: Scope) -> list[str]:
        """The scope's failures, lock and strikes keys."""
        return [f"{self.prefix}:{kind}:{scope.name}" for kind in ("fail", "lock", "strikes")]

    def _all_keys(self, scopes: Sequence[Scope]) -> list[str]:
        return [key for scope in scopes for key in self.keys(scope)]

    async def reserve(self, scopes: Sequence[Scope]) -> Locked | None:
        """Count one try against every scope, unless one is locked (or this try locks it)."""
        b = self.backoff
        args = [
            b.window_seconds,
            b.first_lock_seconds,
            b.longest_lock_seconds,
            b.strikes_remembered_seconds,
            *(s.limit for s in scopes),
        ]
        status, seconds = await self._reserve(keys=self._all_keys(scopes), args=args)
        return Locked(abs(int(status)) - 1, int(seconds), int(status) < 0) if status else None

    async def release(self, scopes: Sequence[Scope]) -> None:
        """The reserved try succeeded."""
        args = ["1" if s.forget_on_success else "0" for s in scopes]
        await self._release(keys=self._all_keys(scopes), args=args)

    async def locked(self, scopes: Sequence[Scope]) -> Locked | None:
        """The first of the scopes that is locked now, reserving nothing."""
        status, seconds = await self._locked(keys=[self.keys(s)[1] for s in scopes])
        return Locked(int(status) - 1, int(seconds), False) if status else None
