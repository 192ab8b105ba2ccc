"""Subscriber feedback tickets.

Filing one is ONE insert of the ticket with its `FeedbackReceived` event in its outbox, so
the ticket and the event cannot come apart. Neither the subscriber's words nor the reply
travel on the bus (v2 events: the ticket, its category, whether there is a reply): they stay
here, and the app reads them by ticket.

An agent's answer is decided by a unique insert: answer number N of a ticket is the claim
`<ticket>:<N>` in `feedback_answers`, decided on the ticket as it stood after answer N-1 and
holding the ticket's new fields and its `FeedbackAnswered` event (outbox). Of two agents
answering the same version at once, one wins; the other gets 409 (FerretDB does not make a
versioned write atomic, so both used to succeed, each announcing its answer). The completion
sets the fields on the ticket (only forward: `answers`) and relays the event; a crash in
between is completed by the next answer to the ticket or by the periodic pass. Events are
relayed right away and swept later if a crash got in between (servicekit.outbox).

A ticket of a tenancy that ended (the number changed hands: stores_service.tenancy) is the
previous owner's: not shown to the new owner, and not answered any more (the push would
reach the new owner).

A subscriber may file `per_hour` tickets an hour and `per_day` a day: both budgets are
checked and counted in one step (servicekit.limits), so concurrent requests cannot slip past
a limit.
If Redis does not answer, filing is refused (503) rather than unlimited.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mobi_contracts import Topic
from mobi_contracts.events.stores import (
    FeedbackAnsweredV2,
    FeedbackAnsweredV2Data,
    FeedbackReceivedV2,
    FeedbackReceivedV2Data,
)
from servicekit.errors import ApiError, not_found, too_many, unavailable
from servicekit.idempotency import fingerprint
from servicekit.limits import Budget, WindowLimiter
from servicekit.mongo import Doc, Store
from servicekit.outbox import OUTBOX, PENDING, SINCE, OutboxRelay, outbox_entries, with_pending
from servicekit.tenancy import EPOCH, of_tenancy, since_filter

from .domain.feedback import FeedbackStatus, can_move, new_ticket, ticket_for_key
from .store import ANSWERS, FEEDBACK, TENANCIES

log = logging.getLogger(__name__)
FEEDBACK_TOTAL = Counter(
    "feedback_submissions_total", "Feedback submissions, by result", ["service", "result"]
)

STUCK_AFTER = timedelta(seconds=5)  # an answer pending this long was left by a crash

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
        self.answers = OutboxRelay(store, relay.publisher, service, ANSWERS)
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
            event = FeedbackReceivedV2.new(
                subject=msisdn,
                producer=self.service,
                correlation_id=correlation_id,
                data=FeedbackReceivedV2Data(
                    ticket=ticket, received_at=now, **{k: v for k, v in fields.items() if k != "text"}
                ),
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

    async def mine(
        self, msisdn: str, limit: int, after: tuple[datetime, str] | None, owner_since: datetime = EPOCH
    ) -> dict[str, Any]:
        """The subscriber's tickets of the current tenancy (filed since `owner_since`), newest
        first; `after` (created_at, ticket) of the last one of the previous page."""
        query: dict[str, Any] = {
            "msisdn": msisdn,
            "hidden": {"$ne": True},
            **since_filter("created_at", owner_since),
        }
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
        if not await self._of_current_tenancy(doc):
            raise ApiError(
                409, "tenancy_ended", "the number changed hands: this ticket was the previous owner's"
            )
        if not can_move(doc["status"], status):
            raise ApiError(409, "invalid_transition", f"a {doc['status']} ticket cannot become {status}")
        now = datetime.now(UTC)
        number = int(doc.get("answers", 0)) + 1
        event = FeedbackAnsweredV2.new(
            subject=doc["msisdn"],
            producer=self.service,
            correlation_id=correlation_id,
            data=FeedbackAnsweredV2Data(ticket=ticket, status=status, has_reply=bool(reply), answered_at=now),
        )
        replies = [*doc.get("replies", []), *([{"text": reply, "agent": agent, "at": now}] if reply else [])]
        changes = {"status": status, "replies": replies, "updated_at": now, "answers": number}
        claim = with_pending(
            {"_id": f"{ticket}:{number}", "ticket": ticket, "number": number, "changes": changes, "at": now},
            outbox_entries(self.topic, [event]),
            now,
        )
        try:
            await self.store[ANSWERS].insert_one({**claim, "rev": 1})
        except DuplicateKeyError as exc:
            # Another answer to this version won. Should a crash have left it before the ticket
            # (pending for long), complete it, so that the retry decides on the version after it.
            winner = await self.store[ANSWERS].find_one({"_id": claim["_id"]})
            if winner is not None and winner.get(PENDING) and winner[SINCE] < now - STUCK_AFTER:
                await self._complete(winner)
            raise ApiError(
                409, "ticket_changed", "the ticket was answered meanwhile; reload and retry"
            ) from exc
        await self._complete({**claim, "rev": 1})
        return ticket_view({**doc, **changes})

    async def _complete(self, claim: Doc) -> None:
        """Set a claimed answer's fields on the ticket (only forward) and relay its event."""
        number = claim["number"]
        await self.store[FEEDBACK].update_one(
            {"_id": claim["ticket"], "$or": [{"answers": {"$exists": False}}, {"answers": {"$lt": number}}]},
            {"$set": claim["changes"]},
        )
        await self._relay_answer(claim)

    async def _relay_answer(self, claim: Doc) -> None:
        try:
            await self.answers.relay(claim)
        except Exception:
            log.warning("answer event not relayed yet; the sweeper will", extra={"answer": claim["_id"]})

    async def complete_answers(self, older_than: timedelta = STUCK_AFTER) -> int:
        """The periodic pass: answers a crash left between their claim and the ticket."""
        cutoff = datetime.now(UTC) - older_than
        pending = await self.store[ANSWERS].find({PENDING: True}).sort(SINCE, 1).limit(200).to_list()
        stuck = [c for c in pending if c.get(SINCE) and c[SINCE] < cutoff]
        for claim in stuck:
            await self._complete(claim)
        return len(stuck)

    async def run_answer_completer(self, every_seconds: float = 2.0) -> None:
        while True:
            try:
                await self.complete_answers()
            except Exception:
                log.exception("completing feedback answers failed")
            await asyncio.sleep(every_seconds)

    async def _of_current_tenancy(self, doc: Doc) -> bool:
        if doc.get("hidden"):
            return False
        tenancy = await self.store[TENANCIES].find_one({"_id": doc["msisdn"]})
        return tenancy is None or of_tenancy(doc.get("created_at"), tenancy["owner_since"])
