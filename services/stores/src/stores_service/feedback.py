"""Subscriber feedback tickets.

Filing one is ONE insert of the ticket with its `FeedbackReceived` event in its outbox, so
the ticket and the event cannot come apart; an agent's reply is one versioned write of the
ticket with `FeedbackAnswered` added to the outbox. Each is relayed right away and swept
later if a crash got in between (servicekit.outbox).

A subscriber may file `per_hour` tickets an hour and `per_day` a day: both budgets are
checked and counted in one step (servicekit.limits), so concurrent requests cannot slip past
a limit.
If Redis does not answer, filing is refused (503) rather than unlimited.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mobi_contracts import Topic
from mobi_contracts.events.stores import (
    FeedbackAnswered,
    FeedbackAnsweredData,
    FeedbackReceived,
    FeedbackReceivedData,
)
from servicekit.errors import ApiError, not_found, too_many, unavailable
from servicekit.idempotency import fingerprint
from servicekit.limits import Budget, WindowLimiter
from servicekit.mongo import Conflict, Store, save_versioned
from servicekit.outbox import OUTBOX, OutboxRelay, outbox_entries, with_pending

from .domain.feedback import FeedbackStatus, can_move, new_ticket, ticket_for_key
from .store import FEEDBACK

log = logging.getLogger(__name__)
FEEDBACK_TOTAL = Counter(
    "feedback_submissions_total", "Feedback submissions, by result", ["service", "result"]
)

PUBLIC_FIELDS = (
    "category",
    "text",
    "rating",
    "app_version",
    "device",
    "screen",
    "status",
    "created_at",
    "updated_at",
)


def encode_cursor(at: datetime, ticket: str) -> str:
    return base64.urlsafe_b64encode(f"{at.astimezone(UTC).isoformat()}|{ticket}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, ticket = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), ticket
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not one this API returned") from exc


def ticket_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "ticket": doc["_id"],
        **{k: doc.get(k) for k in PUBLIC_FIELDS},
        "replies": [{"text": r["text"], "at": r["at"]} for r in doc.get("replies", [])],
    }


class FeedbackDesk:
    def __init__(
        self,
        *,
        store: Store,
        redis: Redis,
        relay: OutboxRelay,
        topic: Topic,
        service: str,
        per_hour: int,
        per_day: int,
    ) -> None:
        self.store = store
        self.redis = redis
        self.relay = relay
        self.topic = topic
        self.service = service
        self.per_hour = per_hour
        self.per_day = per_day
        self.limiter = WindowLimiter(redis)

    async def file(
        self, msisdn: str, fields: dict[str, Any], *, key: str | None, correlation_id: str
    ) -> tuple[int, dict[str, Any]]:
        """(201, the new ticket), or (200, the ticket an earlier request with `key` filed)."""
        body_print = fingerprint(fields)
        ticket = ticket_for_key(msisdn, key) if key else new_ticket()
        if key:
            existing = await self.store[FEEDBACK].find_one({"_id": ticket})
            if existing is not None:
                return 200, self._same_request(existing, msisdn, body_print)
        await self._within_limits(msisdn)
        now = datetime.now(UTC)
        for _ in range(3):
            event = FeedbackReceived.new(
                subject=msisdn,
                producer=self.service,
                correlation_id=correlation_id,
                data=FeedbackReceivedData(ticket=ticket, received_at=now, **fields),
            )
            entries = outbox_entries(self.topic, [event])
            doc = {
                "_id": ticket,
                "msisdn": msisdn,
                **fields,
                "fingerprint": body_print,
                "status": "received",
                "replies": [],
                "created_at": now,
                "updated_at": now,
                "rev": 1,
            }
            try:
                await self.store[FEEDBACK].insert_one(with_pending(doc, entries, now))
            except DuplicateKeyError:
                if key:  # the same key raced itself
                    existing = await self.store[FEEDBACK].find_one({"_id": ticket})
                    return 200, self._same_request(existing or {}, msisdn, body_print)
                ticket = new_ticket()  # a random ticket number taken: draw another
                continue
            await self._relay(doc, entries)
            FEEDBACK_TOTAL.labels(self.service, "accepted").inc()
            return 201, ticket_view(doc)
        raise unavailable("could not allocate a ticket number")

    def _same_request(self, existing: dict[str, Any], msisdn: str, body_print: str) -> dict[str, Any]:
        if existing.get("msisdn") != msisdn or existing.get("fingerprint") != body_print:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with a different request"
            )
        FEEDBACK_TOTAL.labels(self.service, "duplicate").inc()
        return ticket_view(existing)

    async def _within_limits(self, msisdn: str) -> None:
        budgets = [
            Budget(f"feedback:hour:{msisdn}", self.per_hour, 3600),
            Budget(f"feedback:day:{msisdn}", self.per_day, 86400),
        ]
        try:
            over = await self.limiter.take(budgets)
        except RedisError as exc:
            raise unavailable("feedback is temporarily unavailable") from exc
        if over is not None:
            FEEDBACK_TOTAL.labels(self.service, "rate_limited").inc()
            raise too_many(
                "feedback_rate_limited",
                f"you can send {self.per_hour} feedback messages an hour and {self.per_day} a day; "
                "please try again later",
                over.retry_after,
            )

    async def _relay(self, doc: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        try:
            await self.relay.relay({"_id": doc["_id"], OUTBOX: entries, "rev": doc["rev"]})
        except Exception:
            # Stored with the ticket: the sweeper sends it. The subscriber's request succeeded.
            log.warning("feedback event not relayed yet; the sweeper will", extra={"ticket": doc["_id"]})

    async def mine(self, msisdn: str, limit: int, after: tuple[datetime, str] | None) -> dict[str, Any]:
        """The subscriber's tickets, newest first; `after` (created_at, ticket) of the last one
        of the previous page."""
        query: dict[str, Any] = {"msisdn": msisdn}
        if after is not None:
            at, ticket = after
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": ticket}}]
        docs = (
            await self.store[FEEDBACK]
            .find(query)
            .sort([("created_at", -1), ("_id", -1)])
            .limit(limit + 1)
            .to_list()
        )
        items = [ticket_view(d) for d in docs[:limit]]
        last = docs[limit - 1] if len(docs) > limit else None
        return {
            "items": items,
            "next_cursor": encode_cursor(last["created_at"], last["_id"]) if last else None,
        }

    async def answer(
        self, ticket: str, *, reply: str | None, status: FeedbackStatus, agent: str, correlation_id: str
    ) -> dict[str, Any]:
        doc = await self.store[FEEDBACK].find_one({"_id": ticket})
        if doc is None:
            raise not_found("ticket")
        if not can_move(doc["status"], status):
            raise ApiError(409, "invalid_transition", f"a {doc['status']} ticket cannot become {status}")
        now = datetime.now(UTC)
        event = FeedbackAnswered.new(
            subject=doc["msisdn"],
            producer=self.service,
            correlation_id=correlation_id,
            data=FeedbackAnsweredData(ticket=ticket, status=status, reply=reply, answered_at=now),
        )
        # Entries a crash left unrelayed stay in the outbox beside the new one.
        entries = [*(doc.get(OUTBOX) or []), *outbox_entries(self.topic, [event])]
        replies = [*doc.get("replies", []), *([{"text": reply, "agent": agent, "at": now}] if reply else [])]
        changes = with_pending({"status": status, "replies": replies, "updated_at": now}, entries, now)
        try:
            await save_versioned(self.store, FEEDBACK, ticket, doc["rev"], changes)
        except Conflict as exc:
            raise ApiError(409, "ticket_changed", "the ticket changed meanwhile; reload and retry") from exc
        updated = {**doc, **changes, "rev": doc["rev"] + 1}
        await self._relay(updated, entries)
        return ticket_view(updated)
