"""Slots and charge requests to the account service.

A period is decided by inserting its slot (`<subscription>:<period>`) into `charges`; slots are
inserted many at a time (`insert_many`, unordered: a duplicate key is a period already decided
by an earlier pass, a skip or a stopper). A `requested` slot is published as
`VasChargeRequested` (v2; charge_id = the slot's id, event id derived from it, so a re-publish
is the same event and the account service debits it once) only under its *ticket*: a unique
insert into `sends` with the verdict `send`. A cancellation inserts `void` tickets for the
charges not yet on their way, so between a renewal and a cancellation racing for one charge
exactly one decides, and a charge whose ticket says `send` is published before the
cancellation answers (see `settle_unsent`): nothing is published after it.

Which charge an answer is about is remembered in Redis when it is published (one MGET per
batch of answers, answers.py); the store's `event_id` index is the fallback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mobi_contracts import Topic
from mobi_contracts.events.vas import PackGrant, VasChargeRequestedV2, VasChargeRequestedV2Data
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store
from servicekit.outbox import outbox_entries

from .store import CHARGES, SENDS

log = logging.getLogger(__name__)
PRODUCER = "vas-service"
MEMO_TTL = 3 * 24 * 3600
CHARGES_TOTAL = Counter(
    "vas_charges_total", "VAS and pack charges, by kind and outcome", ["service", "kind", "outcome"]
)


def request_event(claim: Doc, topic: Topic) -> dict[str, Any]:
    """The slot's `VasChargeRequested`, ready to send: rebuilt from the slot the same every
    time (its id and times are the slot's), so the slot need not store it."""
    event = VasChargeRequestedV2.new(
        subject=claim["msisdn"],
        producer=PRODUCER,
        correlation_id=claim["correlation_id"],
        event_id=uuid.UUID(claim["event_id"]),
        occurred_at=claim["at"],
        data=VasChargeRequestedV2Data(
            charge_id=claim["_id"],
            subscription_id=claim["subscription_id"],
            code=claim["code"],
            kind=claim["kind"],
            amount_vnd=claim["amount_vnd"],
            description=claim["description"],
            period_start=claim["period_start"],
            period_end=claim["period_end"],
            grants=[PackGrant.model_validate(g) for g in claim.get("grants") or ()],
            requested_at=claim["at"],
            subscribed_at=claim.get("subscribed_at"),
        ),
    )
    return outbox_entries(topic, [event])[0]


class ChargeDesk:
    def __init__(
        self, store: Store, publisher: EventPublisher, redis: Redis, topic: Topic, service: str
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.redis = redis
        self.topic = topic
        self.service = service

    async def claim(self, slots: Sequence[Doc]) -> list[Doc]:
        """Decide periods: the slots that were new (the others were decided before)."""
        return await self.store.insert_fresh(CHARGES, slots)

    async def slots(self, subscription_id: str) -> list[Doc]:
        """A subscription's slots, newest first (read by subscription)."""
        found = await self.store[CHARGES].find({"subscription_id": subscription_id}).to_list()
        return sorted(found, key=lambda s: int(s["period"]), reverse=True)

    async def send(self, claims: Sequence[Doc]) -> list[Doc]:
        """Publish `requested` slots under their tickets; the ones sent. A slot whose ticket a
        cancellation voided first is not sent; one whose ticket says `send` already (a retry,
        the resume pass) is sent again: the same event, which the account applies once."""
        wanted = [c for c in claims if c["state"] == "requested"]
        if not wanted:
            return []
        now = datetime.now(UTC)
        tickets = [{"_id": c["_id"], "verdict": "send", "at": now} for c in wanted]
        new = {t["_id"] for t in await self.store.insert_fresh(SENDS, tickets)}
        others = [c["_id"] for c in wanted if c["_id"] not in new]
        earlier = await self.store.find_by_ids(SENDS, others) if others else {}
        go = [c for c in wanted if c["_id"] in new or earlier.get(c["_id"], {}).get("verdict") == "send"]
        await self.publish(go)
        voided = len(wanted) - len(go)
        if voided:
            CHARGES_TOTAL.labels(self.service, wanted[0]["kind"], "void").inc(voided)
        return go

    async def publish(self, claims: Sequence[Doc]) -> None:
        if not claims:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for claim in claims:
                    pipe.set(memo_key(claim["event_id"]), orjson.dumps(memo(claim)), ex=MEMO_TTL)
                await pipe.execute()
        except RedisError as exc:  # the answers find the slot in the store instead
            log.warning("could not remember charges in Redis", extra={"error": repr(exc)})
        await self.publisher.publish_serialized([request_event(c, self.topic) for c in claims])
        for claim in claims:
            CHARGES_TOTAL.labels(self.service, claim["kind"], "requested").inc()

    async def settle_unsent(self, slots: Sequence[Doc], answered: set[str]) -> list[Doc]:
        """For a cancellation: charges of these slots not answered yet are voided if they are not
        on their way (a `void` ticket), and published now if they are (so none goes out after
        the cancellation answers). The slots voided."""
        waiting = [s for s in slots if s["state"] == "requested" and s["_id"] not in answered]
        if not waiting:
            return []
        now = datetime.now(UTC)
        voids = [{"_id": s["_id"], "verdict": "void", "at": now} for s in waiting]
        voided = {t["_id"] for t in await self.store.insert_fresh(SENDS, voids)}
        on_their_way = [s for s in waiting if s["_id"] not in voided]
        if on_their_way:
            tickets = await self.store.find_by_ids(SENDS, [s["_id"] for s in on_their_way])
            await self.publish(
                [s for s in on_their_way if tickets.get(s["_id"], {}).get("verdict") == "send"]
            )
        return [s for s in waiting if s["_id"] in voided]

    async def tickets(self, charge_ids: Sequence[str]) -> dict[str, str]:
        """The verdict of each charge that has one."""
        found = await self.store.find_by_ids(SENDS, charge_ids)
        return {k: str(v["verdict"]) for k, v in found.items()}


def memo_key(event_id: str) -> str:
    return f"vas:charge:{event_id}"


_MEMO_FIELDS = (
    "_id",
    "msisdn",
    "subscription_id",
    "code",
    "period",
    "kind",
    "amount_vnd",
    "month",
    "period_start",
    "period_end",
    "auto_renew",
    "grants",
)


def memo(claim: Doc) -> Doc:
    return {k: claim.get(k) for k in _MEMO_FIELDS}


def unmemo(raw: bytes) -> Doc:
    doc: Doc = orjson.loads(raw)
    for key in ("period_start", "period_end"):
        doc[key] = datetime.fromisoformat(doc[key])
    return doc
