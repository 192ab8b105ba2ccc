"""Fixed-window limits in Redis, several checked and counted together by one Lua script.

A request is counted against every limit it names only when all of them still allow it (a
client over one limit uses up nobody's budget), and concurrent requests cannot slip past a
limit. Windows are fixed (the key carries the window's number), so a key expires by itself.
To be replaced by the kit's limiter (issue 18) once it is in main.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.errors import too_many, unavailable

# KEYS: one counter per limit; ARGV: limit, window seconds (pairs, in KEYS order).
# Returns 0 when counted, else the seconds until the first full window resets.
_CHECK_AND_COUNT = """
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 1 then ttl = tonumber(ARGV[2 * i]) end
    return ttl
  end
end
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    name: str  # what is limited, e.g. "outside-requests:number"
    subject: str  # whose budget, e.g. the MSISDN or the provider
    per: int  # at most this many ...
    seconds: int  # ... in a window of this many seconds

    def key(self, now: float) -> str:
        return f"vas:limit:{self.name}:{self.subject}:{int(now // self.seconds)}"


class Limiter:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_CHECK_AND_COUNT)

    async def take(
        self, *limits: Limit, code: str = "rate_limited", message: str = "too many requests; try again later"
    ) -> None:
        """Count one request against every limit, or refuse it (429 with Retry-After)."""
        now = time.time()
        args: list[int] = []
        for limit in limits:
            args += [limit.per, limit.seconds]
        try:
            wait = int(await self._script(keys=[limit.key(now) for limit in limits], args=args))
        except RedisError as exc:
            raise unavailable("cannot check the request limits right now") from exc
        if wait:
            raise too_many(code, message, wait)
