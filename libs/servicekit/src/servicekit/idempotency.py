"""`Idempotency-Key` for POST endpoints that create something (payments, top-ups).

The first request with a key claims it (a unique insert, atomic on MongoDB and FerretDB)
together with a fingerprint of its body; when it finishes, its response is stored. A retry
with the same key and body gets the stored response and creates nothing; the same key with
another body is refused; a retry while the first is still running is told to wait.
Callers should also derive the created resource's id from the key, so even a crash before
the response is stored cannot create a second resource.

A request that crashed leaves its claim `in_progress`: after `stale_after` a retry takes the
claim over (one conditional update, so of two retries only one does) and runs again, which
the derived resource id makes safe. Keys are kept for `keep` (clients retry within minutes)
and then deleted by `run_cleanup`, a periodic task: the store has no TTL indexes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .errors import ApiError
from .mongo import Store

log = logging.getLogger(__name__)

COLLECTION = "idempotency_keys"
_KEY = re.compile(r"^[A-Za-z0-9_\-:.]{8,64}$")


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def fingerprint(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def require_key(key: str | None) -> str:
    if key is None:
        raise ApiError(
            400, "idempotency_key_required", "send an Idempotency-Key header (8-64 of A-Z a-z 0-9 _ - : .)"
        )
    if not _KEY.match(key):
        raise ApiError(422, "invalid_idempotency_key", "Idempotency-Key must be 8-64 of A-Z a-z 0-9 _ - : .")
    return key


class IdempotencyKeys:
    def __init__(
        self,
        store: Store,
        *,
        stale_after: timedelta = timedelta(seconds=60),
        keep: timedelta = timedelta(hours=24),
    ) -> None:
        self.store = store
        self.stale_after = stale_after
        self.keep = keep

    @staticmethod
    def _id(scope: str, owner: str, key: str) -> str:
        return f"{scope}:{owner}:{key}"

    async def begin(self, scope: str, owner: str, key: str, body_fingerprint: str) -> StoredResponse | None:
        """None: this request owns the key, go ahead. A StoredResponse: answer with it."""
        doc_id = self._id(scope, owner, key)
        now = datetime.now(UTC)
        claimed = await self.store.claim(
            COLLECTION, doc_id, fingerprint=body_fingerprint, state="in_progress", created_at=now
        )
        if claimed:
            return None
        existing = await self.store[COLLECTION].find_one({"_id": doc_id})
        if existing is None:  # released between our insert and read: try once more
            return await self.begin(scope, owner, key, body_fingerprint)
        if existing["fingerprint"] != body_fingerprint:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with a different request body"
            )
        if existing["state"] == "done":
            return StoredResponse(existing["status"], existing["body"])
        if now - existing["created_at"] > self.stale_after and await self._take_over(existing, now):
            log.warning("taking over a stale idempotency claim", extra={"key": doc_id})
            return None
        raise ApiError(
            409, "request_in_progress", "a request with this Idempotency-Key is still running; retry"
        )

    async def _take_over(self, stale: dict[str, Any], now: datetime) -> bool:
        """Claim a crashed request's key. A unique insert decides which of concurrent retries
        wins (a conditional update would not: FerretDB can apply two at once)."""
        marker = f"{stale['_id']}:takeover:{stale['created_at'].isoformat()}"
        if not await self.store.claim(COLLECTION, marker, state="takeover", created_at=now, fingerprint=""):
            return False
        await self.store[COLLECTION].update_one({"_id": stale["_id"]}, {"$set": {"created_at": now}})
        return True

    async def delete_expired(self, now: datetime | None = None) -> int:
        """Forget keys older than `keep` (one delete statement)."""
        cutoff = (now or datetime.now(UTC)) - self.keep
        result = await self.store[COLLECTION].delete_many({"created_at": {"$lt": cutoff}})
        return result.deleted_count

    async def run_cleanup(self, every_seconds: float = 600.0) -> None:
        """Background task: the collection would otherwise grow without bound."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.delete_expired()
            except Exception:
                log.exception("idempotency key cleanup failed")

    async def complete(self, scope: str, owner: str, key: str, status: int, body: dict[str, Any]) -> None:
        await self.store[COLLECTION].update_one(
            {"_id": self._id(scope, owner, key)}, {"$set": {"state": "done", "status": status, "body": body}}
        )

    async def release(self, scope: str, owner: str, key: str) -> None:
        """The request failed before doing anything: let a retry start afresh."""
        await self.store[COLLECTION].delete_one({"_id": self._id(scope, owner, key), "state": "in_progress"})
