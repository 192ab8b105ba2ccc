"""Idempotent consumer: remembers which event ids a consumer group has already applied.

Kept in Redis: one pipelined round trip checks a whole batch (on FerretDB a lookup of
many ids is one query per id or a collection scan). It is the fast path, not the last
line: a handler whose effect is not naturally idempotent also records the event id in the
document it changes (see the account ledger), so a lost Redis key cannot double an effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis.asyncio import Redis


class Inbox:
    def __init__(self, redis: Redis, group: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.group = group
        self.ttl = ttl_seconds

    def _key(self, event_id: str) -> str:
        return f"inbox:{self.group}:{event_id}"

    async def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.exists(self._key(event_id))
            found = await pipe.execute()
        return {event_id for event_id, hit in zip(event_ids, found, strict=True) if hit}

    async def remember(self, event_ids: Iterable[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for event_id in event_ids:
                pipe.set(self._key(event_id), b"1", ex=self.ttl)
                count += 1
            if count:
                await pipe.execute()
