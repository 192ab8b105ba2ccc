"""Idempotent consumer, fast path: which event ids a consumer group has already applied.

Kept in Redis as one set per group and day (`inbox:<group>:<day>`). A whole batch is
checked by one script call that asks every live day's set server-side and answers only the
ids it has seen (usually none), and remembered by another: two commands per batch, not one
per event. The ids travel as ONE newline-joined argument: redis-py packs each argument in
Python, which at 500 ids a batch cost more than the consumer's own work
(`bench/consumer_throughput.py --no-store`).

It is the fast path, not the guarantee: an id is forgotten after `ttl_seconds`, and a lost
Redis forgets everything. Every handler whose effect is not naturally idempotent also
records its effect under a unique key in the store (the account journal, payment's
landed marks), so replaying a whole topic from offset 0 changes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

DAY = 86_400

# KEYS: the live day sets; ARGV[1]: ids joined by newlines. The 1-based positions of ids
# seen in any of the sets.
_SEEN = """
local ids = {}
for id in string.gmatch(ARGV[1], '[^\\n]+') do ids[#ids + 1] = id end
local hits, out = {}, {}
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    for i, found in ipairs(redis.call('SMISMEMBER', key, unpack(ids))) do
      if found == 1 and not hits[i] then hits[i] = true; out[#out + 1] = i end
    end
  end
end
return out
"""

# KEYS[1]: today's set; ARGV[1]: ids joined by newlines; ARGV[2]: seconds the set lives.
_REMEMBER = """
local ids = {}
for id in string.gmatch(ARGV[1], '[^\\n]+') do ids[#ids + 1] = id end
redis.call('SADD', KEYS[1], unpack(ids))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return #ids
"""


class Inbox:
    def __init__(self, redis: Redis, group: str, ttl_seconds: int, bucket_seconds: int = DAY) -> None:
        self.redis = redis
        self.group = group
        self.ttl = ttl_seconds
        self.bucket_seconds = bucket_seconds
        self._live_buckets = math.ceil(ttl_seconds / bucket_seconds) + 1
        self._seen = redis.register_script(_SEEN)
        self._remember = redis.register_script(_REMEMBER)

    def _bucket(self, index: int) -> str:
        return f"inbox:{self.group}:{index}"

    def _now_index(self) -> int:
        return int(time.time()) // self.bucket_seconds

    async def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        newest = self._now_index()
        keys = [self._bucket(i) for i in range(newest - self._live_buckets + 1, newest + 1)]
        positions = await self._seen(keys=keys, args=["\n".join(event_ids)])
        return {event_ids[int(p) - 1] for p in positions}

    async def remember(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        if not ids:
            return
        # A day's set lives until its last member is `ttl` old.
        await self._remember(
            keys=[self._bucket(self._now_index())], args=["\n".join(ids), self.ttl + self.bucket_seconds]
        )
