"""A read cache in Redis that never goes back in time.

Each entry carries the version of the state it copies (a document's `rev`; the account
ledger's balances use the decision's `seq`), and is replaced only by a newer version (one Lua
script, atomic in Redis). The single writer of a document (e.g. the
account ledger consumer) puts every new version before it commits its batch, so a reader
never sees an older state than the store had when the writer's batch was done; a reader
that misses fills the entry from the store, and a slow reader cannot overwrite what the
writer put meanwhile. Entries expire after `ttl_seconds` so idle subscribers cost no memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

# KEYS[1]: entry; ARGV: version, payload, ttl. Stored as "<version>|<payload>".
_PUT_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local bar = string.find(current, '|', 1, true)
  if bar and tonumber(string.sub(current, 1, bar - 1)) > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""


class VersionedCache:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._put = redis.register_script(_PUT_IF_NEWER)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def redis_key(self, key: str) -> str:
        """Where an entry lives (to fetch it with other keys in one round trip: `parse`)."""
        return self._key(key)

    @staticmethod
    def parse(raw: object) -> tuple[int, bytes] | None:
        if not isinstance(raw, bytes):
            return None
        version, _, payload = raw.partition(b"|")
        return int(version), payload

    async def get_raw(self, key: str) -> bytes | None:
        raw = await self.redis.get(self._key(key))
        return raw if isinstance(raw, bytes) else None

    async def get_many(self, keys: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """The entries of `keys` that exist, in one round trip."""
        if not keys:
            return {}
        raws = await self.redis.mget([self._key(k) for k in keys])
        found = {key: self.parse(raw) for key, raw in zip(keys, raws, strict=True)}
        return {key: hit for key, hit in found.items() if hit is not None}

    async def drop(self, keys: Sequence[str]) -> None:
        """Forget entries (the next reader fills them from the store)."""
        if keys:
            await self.redis.delete(*(self._key(k) for k in keys))

    async def put(self, key: str, version: int, payload: bytes) -> None:
        await self._put(keys=[self._key(key)], args=[version, payload, self.ttl])

    async def put_many(self, entries: Sequence[tuple[str, int, bytes]]) -> None:
        """Several entries in one round trip."""
        if not entries:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, version, payload in entries:
                await self._put(keys=[self._key(key)], args=[version, payload, self.ttl], client=pipe)
            await pipe.execute()
