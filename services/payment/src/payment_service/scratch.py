"""Scratch-card top-ups: serial + PIN, each card used once, wrong PINs locked out.

A try is reserved (counted) before the PIN is compared, in one Redis step, against the
subscriber, the client and the card's serial: parallel guesses cannot pass the limit, and
a card guessed at from many places is locked too. A right PIN gives its try back.

A card is used by inserting its serial into `scratch_card_uses` (a unique key): of any
number of concurrent redemptions exactly one insert succeeds, and that insert carries the
TopupRecorded event (outbox), so the use and the credit it implies cannot come apart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mobi_contracts.events.payment import TopupRecorded, TopupRecordedData
from mobi_contracts.topics import PAYMENT_EVENTS
from servicekit.buckets import hour_of, minute_of
from servicekit.errors import ApiError, too_many, unavailable
from servicekit.limits import Backoff, Scope, TryLimiter
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending

from .domain.rules import event_id, pin_digest, pin_matches
from .store import SCRATCH_CARDS, SCRATCH_USES

log = logging.getLogger(__name__)
T = TypeVar("T")
REDEMPTIONS = Counter("scratch_card_redemptions_total", "Scratch-card redemptions", ["service", "result"])

SERIAL_MAX_WRONG = 10  # wrong PINs for one card, from anyone, before the card is locked


class ScratchCards:
    def __init__(
        self,
        *,
        store: Store,
        redis: Redis,
        relay: OutboxRelay,
        pepper: bytes,
        max_wrong: int,
        lockout_seconds: int,
        service: str,
    ) -> None:
        self.store = store
        self.redis = redis
        self.relay = relay
        self.pepper = pepper
        self.max_wrong = max_wrong
        self.lockout = lockout_seconds
        self.service = service
        # A scope past its limit is locked for `lockout_seconds`, the same each time.
        same = lockout_seconds
        self.tries = TryLimiter(redis, "scratch", Backoff(same, same, same, same))

    async def redeem(
        self, *, payer: str, serial: str, pin: str, target: str | None, client: str, correlation_id: str
    ) -> dict[str, Any]:
        scopes = await self._reserve_try(payer, client, serial)
        card = await self.store[SCRATCH_CARDS].find_one({"_id": serial})
        if card is None or not pin_matches(self.pepper, serial, pin, card["pin_digest"]):
            REDEMPTIONS.labels(self.service, "wrong_pin").inc()
            raise ApiError(422, "invalid_card", "the serial or the PIN is wrong")
        await self._redis(self.tries.release(scopes))
        if card.get("status") != "active" or card.get(
            "expires_at", datetime.max.replace(tzinfo=UTC)
        ) < datetime.now(UTC):
            return await self._already_used(card["_id"], payer, target or payer)
        return await self._use(card, payer, target or payer, correlation_id)

    async def _already_used(self, serial: str, payer: str, target: str) -> dict[str, Any]:
        """A card used by this very request before (the app retries after a lost answer) is
        answered as then; for anyone else it is used up (or expired)."""
        use = await self.store[SCRATCH_USES].find_one({"_id": serial})
        if use is not None and (use["msisdn"], use["target_msisdn"]) == (payer, target):
            REDEMPTIONS.labels(self.service, "retried").inc()
            return _accepted(use["topup_id"], use["amount_vnd"], target)
        REDEMPTIONS.labels(self.service, "not_usable").inc()
        raise ApiError(409, "card_not_usable", "this card has been used or has expired")

    async def _use(
        self, card: dict[str, Any], payer: str, target: str, correlation_id: str
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        topup_id = f"SC{card['_id']}"
        event = TopupRecorded.new(
            subject=target,
            event_id=event_id(topup_id, "topup"),
            producer="payment-service",
            correlation_id=correlation_id,
            data=TopupRecordedData(
                topup_id=topup_id,
                amount_vnd=card["face_value_vnd"],
                method="scratch_card",
                payer_msisdn=payer,
                recorded_at=now,
            ),
        )
        entries = outbox_entries(PAYMENT_EVENTS, [event])
        use = {
            "msisdn": payer,
            "target_msisdn": target,
            "amount_vnd": card["face_value_vnd"],
            "topup_id": topup_id,
            "topup_event_id": str(event.event_id),
            "used_at": now,
            "used_minute": minute_of(now),
            "used_hour": hour_of(now),
            "events": entries,
        }
        if not await self.store.claim(SCRATCH_USES, card["_id"], **with_pending(use, entries, now), rev=1):
            return await self._already_used(card["_id"], payer, target)
        await self.relay.relay({"_id": card["_id"], "outbox": entries, "rev": 1})
        # Only the winner reaches here, so the card has one writer.
        await self.store[SCRATCH_CARDS].update_one(
            {"_id": card["_id"]}, {"$set": {"status": "used", "used_at": now}}
        )
        REDEMPTIONS.labels(self.service, "ok").inc()
        return _accepted(topup_id, card["face_value_vnd"], target)

    async def _reserve_try(self, payer: str, client: str, serial: str) -> list[Scope]:
        """Tries of the subscriber, the client and the card's serial; a right PIN gives its
        try back to each."""
        scopes = [
            Scope(f"sub:{payer}", self.max_wrong),
            Scope(f"client:{client}", self.max_wrong * 4),
            Scope(f"serial:{serial}", SERIAL_MAX_WRONG),
        ]
        locked = await self._redis(self.tries.reserve(scopes))
        if locked is not None:
            REDEMPTIONS.labels(self.service, "locked").inc()
            raise too_many("locked_out", "too many wrong PINs; try again later", locked.seconds)
        return scopes

    async def _redis(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            raise unavailable("scratch-card top-up is temporarily unavailable") from exc

    async def import_batch(self, batch_id: str, cards: list[dict[str, Any]]) -> int:
        """Cards from the printer: serial, PIN, face value, expiry. PINs are kept only as HMACs."""
        docs = [
            {
                "_id": c["serial"],
                "pin_digest": pin_digest(self.pepper, c["serial"], c["pin"]),
                "face_value_vnd": c["face_value_vnd"],
                "expires_at": c["expires_at"],
                "status": "active",
                "batch": batch_id,
            }
            for c in cards
        ]
        return await self.store.insert_new(SCRATCH_CARDS, docs)


def _accepted(topup_id: str, amount: int, target: str) -> dict[str, Any]:
    return {"topup_id": topup_id, "amount_vnd": amount, "target_msisdn": target, "status": "accepted"}
