"""Idempotent consumer, fast path: which event ids a consumer group has already applied.

Kept in Redis as one set per group and day (`inbox:<group>:<day>`), so a whole batch is
checked with one SMISMEMBER per live day and remembered with one SADD: a handful of
commands per batch, not one per event (`bench/consumer_throughput.py --no-store`).

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


class Inbox:
    def __init__(self, redis: Redis, group: str, ttl_seconds: int, bucket_seconds: int = DAY) -> None:
        self.redis = redis
        self.group = group
        self.ttl = ttl_seconds
        self.bucket_seconds = bucket_seconds
        self._live_buckets = math.ceil(ttl_seconds / bucket_seconds) + 1

    def _bucket(self, index: int) -> str:
        return f"inbox:{self.group}:{index}"

    def _now_index(self) -> int:
        return int(time.time()) // self.bucket_seconds

    async def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        newest = self._now_index()
        async with self.redis.pipeline(transaction=False) as pipe:
            for index in range(newest - self._live_buckets + 1, newest + 1):
                pipe.smismember(self._bucket(index), list(event_ids))
            answers = await pipe.execute()
        return {
            event_id for answer in answers for event_id, hit in zip(event_ids, answer, strict=True) if hit
        }

    async def remember(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        if not ids:
            return
        key = self._bucket(self._now_index())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, *ids)
            # The bucket lives until its last member is `ttl` old.
            pipe.expire(key, self.ttl + self.bucket_seconds)
            await pipe.execute()
