"""Charge requests to the account service, and its answers.

A charge is claimed by inserting its (subscription, period) key into `charges`; only a new
claim is published as `VasChargeRequested` (charge_id = that key, event id derived from it, so
a re-publish is the same event and the account service debits it once). Claims are inserted
many at a time (`insert_many`, unordered: a duplicate key is a period already claimed by an
earlier pass, a skip or a cancellation). Before publishing, claims of subscriptions cancelled
meanwhile are voided, so a cancellation stops every charge not yet on its way.

A batch is published under a marker (`publish_batches`) removed once Kafka has it; the sweeper
publishes the batches a crash left behind. The answers (`BalanceChanged` with reason
`vas_charge`, `BalanceChangeRejected`) become consent-log entries `<charge>:charged` /
`<charge>:failed` and the events `VasCharged` (+ `VasRenewed`, `DataPackPurchased`) or
`VasChargeFailed`. Which charge an answer is about is remembered in Redis when it is published
(one MGET per batch of answers); the store's `event_id` index is the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from prometheus_client import Counter
from pymongo.errors import BulkWriteError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.vas import (
    ChargeKind,
    DataBucketGrant,
    DataPackPurchased,
    DataPackPurchasedData,
    VasCharged,
    VasChargedData,
    VasChargeFailed,
    VasChargeFailedData,
    VasChargeRequested,
    VasChargeRequestedData,
    VasRenewed,
    VasRenewedData,
)
from servicekit.buckets import hour_of, hours_between
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import DUPLICATE_KEY, Doc, Store
from servicekit.outbox import outbox_entries

from .domain.subscriptions import ChargeState, charge_id, event_id_for, month_of, period_bounds
from .store import CHARGES, CONSENTS, PUBLISH_BATCHES

log = logging.getLogger(__name__)
PRODUCER = "vas-service"
MEMO_TTL = 3 * 24 * 3600
FailureReason = Literal["insufficient_funds", "no_such_account", "monthly_cap_reached"]
SMALL = 64  # up to this many claims, cancellations are checked by id; beyond, by the hour
CHARGES_TOTAL = Counter(
    "vas_charges_total", "VAS and pack charges, by kind and outcome", ["service", "kind", "outcome"]
)


def charge_kind(template: Doc, period: int) -> ChargeKind:
    if template.get("quota_kb"):
        return "data_pack" if period == 0 else "data_pack_renewal"
    return "vas_first" if period == 0 else "vas_renewal"


def charge_claim(
    template: Doc,
    period: int,
    now: datetime,
    correlation_id: str,
    topic: Topic,
    state: ChargeState = "requested",
) -> Doc:
    """The claim of one (subscription, period), with its `VasChargeRequested` when it charges.

    `template` is what a charge needs of its subscription (schedule entries carry it)."""
    sub = template["subscription_id"]
    cid = charge_id(sub, period)
    start, end = period_bounds(template["started_at"], template["period_days"], period)
    kind = charge_kind(template, period)
    bucket = None
    if template.get("quota_kb"):
        bucket = DataBucketGrant(
            bucket_id=f"{template['code']}-{cid}".replace(":", "-"),
            name=template["name"][:100],
            quota_kb=template["quota_kb"],
            expires_at=end,
        )
    claim: Doc = {
        "_id": cid,
        "msisdn": template["msisdn"],
        "subscription_id": sub,
        "code": template["code"],
        "period": period,
        "kind": kind,
        "state": state,
        "amount_vnd": template["price_vnd"],
        "period_start": start,
        "period_end": end,
        "auto_renew": template.get("auto_renew", True),
        "bucket": bucket.model_dump(mode="json") if bucket else None,
        "description": f"{template['code']}: {template['name']}"[:200],
        "month": month_of(now),
        "at": now,
        "hour": hour_of(now),
    }
    if state == "requested":
        claim["correlation_id"] = correlation_id or cid
        claim["event_id"] = str(event_id_for(cid, "requested"))
    return claim


def request_event(claim: Doc, topic: Topic) -> dict[str, Any]:
    """The claim's `VasChargeRequested`, ready to send: rebuilt from the claim the same every
    time (its id and times are the claim's), so the claim need not store it."""
    bucket = DataBucketGrant.model_validate(claim["bucket"]) if claim.get("bucket") else None
    event = VasChargeRequested.new(
        subject=claim["msisdn"],
        producer=PRODUCER,
        correlation_id=claim["correlation_id"],
        event_id=uuid.UUID(claim["event_id"]),
        occurred_at=claim["at"],
        data=VasChargeRequestedData(
            charge_id=claim["_id"],
            subscription_id=claim["subscription_id"],
            code=claim["code"],
            kind=claim["kind"],
            amount_vnd=claim["amount_vnd"],
            description=claim["description"],
            period_start=claim["period_start"],
            period_end=claim["period_end"],
            data_bucket=bucket,
            requested_at=claim["at"],
        ),
    )
    return outbox_entries(topic, [event])[0]


async def insert_claims(store: Store, collection: str, docs: Sequence[Doc]) -> list[Doc]:
    """Insert many at once; the documents that were new (a duplicate key was claimed before)."""
    if not docs:
        return []
    try:
        await store[collection].insert_many(list(docs), ordered=False)
        return list(docs)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        taken = {e["index"] for e in errors}
        return [doc for i, doc in enumerate(docs) if i not in taken]


class ChargeDesk:
    def __init__(
        self, store: Store, publisher: EventPublisher, redis: Redis, topic: Topic, service: str
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.redis = redis
        self.topic = topic
        self.service = service

    # -- asking -------------------------------------------------------------------------------

    async def request(self, claims: list[Doc], since: datetime | None = None) -> list[Doc]:
        """Claim and publish charges; the ones that went out (new, and not cancelled meanwhile).

        `since`: when the caller read the subscriptions it charges (cancellations after it are
        looked for)."""
        if not claims:
            return []
        started = since or datetime.now(UTC)
        batch = uuid.uuid4().hex
        for claim in claims:
            claim["batch"] = batch
        await self.store[PUBLISH_BATCHES].insert_one(
            {"_id": batch, "at": datetime.now(UTC), "since": started}
        )
        new = await insert_claims(self.store, CHARGES, claims)
        live = await self._without_cancelled(new, started)
        await self._send(live)
        await self.store[PUBLISH_BATCHES].delete_one({"_id": batch})
        return live

    async def _without_cancelled(self, claims: list[Doc], since: datetime) -> list[Doc]:
        if not claims:
            return []
        subs = {c["subscription_id"] for c in claims}
        if len(claims) <= SMALL:
            found = await self.store.find_by_ids(CONSENTS, [f"{s}:cancelled" for s in subs])
            cancelled = {doc["subscription_id"] for doc in found.values()}
        else:
            hours = hours_between(since - timedelta(minutes=5), datetime.now(UTC))
            found_lists = await self.store.bounded_all(
                self.store[CONSENTS].find({"action": action, "hour": hour}, {"subscription_id": 1}).to_list()
                for hour in hours
                for action in ("cancelled", "auto_renew_off")
            )
            cancelled = {doc["subscription_id"] for docs in found_lists for doc in docs} & subs
        if not cancelled:
            return claims
        for claim in claims:
            if claim["subscription_id"] in cancelled:
                await self.store[CHARGES].update_one(
                    {"_id": claim["_id"], "state": "requested"}, {"$set": {"state": "void"}}
                )
                CHARGES_TOTAL.labels(self.service, claim["kind"], "void").inc()
        return [c for c in claims if c["subscription_id"] not in cancelled]

    async def _send(self, claims: list[Doc]) -> None:
        if not claims:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for claim in claims:
                    pipe.set(memo_key(claim["event_id"]), orjson.dumps(_memo(claim)), ex=MEMO_TTL)
                await pipe.execute()
        except RedisError as exc:  # the answers find the claim in the store instead
            log.warning("could not remember charges in Redis", extra={"error": repr(exc)})
        await self.publisher.publish_serialized([request_event(c, self.topic) for c in claims])
        for claim in claims:
            CHARGES_TOTAL.labels(self.service, claim["kind"], "requested").inc()

    async def sweep(self, older_than: timedelta = timedelta(seconds=30)) -> int:
        """Publish the batches a crash left between their claims and Kafka."""
        now = datetime.now(UTC)
        markers = await self.store[PUBLISH_BATCHES].find({}).limit(100).to_list()
        stuck = [m for m in markers if now - m["at"] > older_than]
        for marker in stuck:
            claims = await self.store[CHARGES].find({"batch": marker["_id"]}).to_list()
            pending = [c for c in claims if c["state"] == "requested"]
            await self._send(await self._without_cancelled(pending, marker["since"]))
            await self.store[PUBLISH_BATCHES].delete_one({"_id": marker["_id"]})
        return len(stuck)

    async def run_sweeper(self, every_seconds: float = 10.0) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("charge batch sweep failed")

    # -- the answers --------------------------------------------------------------------------

    async def on_answers(self, events: Sequence[AnyEvent]) -> None:
        outcomes: dict[str, AnyEvent] = {}
        for event in events:
            if (
                isinstance(event, BalanceChanged)
                and event.data.reason == "vas_charge"
                and event.data.cause_event_type == VasChargeRequested.EVENT_TYPE
            ):
                outcomes[event.data.cause_event_id] = event  # a debit wins over a refusal
            elif (
                isinstance(event, BalanceChangeRejected)
                and event.data.cause_event_type == VasChargeRequested.EVENT_TYPE
            ):
                outcomes.setdefault(event.data.cause_event_id, event)
        if not outcomes:
            return
        claims = await self._claims_for(list(outcomes))
        entries: list[Doc] = []
        produced: list[AnyEvent] = []
        for cause, answer in outcomes.items():
            claim = claims.get(cause)
            if claim is None:
                log.warning("answer to a charge we never requested", extra={"cause_event_id": cause})
                continue
            entry, implied = answer_entry(claim, answer)
            entries.append(entry)
            produced.extend(implied)
        await self.store.insert_new(CONSENTS, entries)
        # Published on every delivery (ids are derived from the charge): a redelivered batch
        # whose entries exist still sends its events, which consumers recognise.
        await self.publisher.publish(self.topic.name, produced)
        for entry in entries:
            CHARGES_TOTAL.labels(self.service, entry["kind"], entry["action"]).inc()

    async def _claims_for(self, event_ids: list[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        try:
            values = await self.redis.mget([memo_key(e) for e in event_ids])
            for event_id, raw in zip(event_ids, values, strict=True):
                if isinstance(raw, bytes):
                    found[event_id] = _unmemo(raw)
        except RedisError as exc:
            log.warning("charge memo unavailable", extra={"error": repr(exc)})
        missing = [e for e in event_ids if e not in found]
        docs = await self.store.bounded_all(self.store[CHARGES].find_one({"event_id": e}) for e in missing)
        for event_id, doc in zip(missing, docs, strict=True):
            if doc is not None:
                found[event_id] = doc
        return found


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
    "bucket",
)


def _memo(claim: Doc) -> Doc:
    return {k: claim.get(k) for k in _MEMO_FIELDS}


def _unmemo(raw: bytes) -> Doc:
    doc: Doc = orjson.loads(raw)
    for key in ("period_start", "period_end"):
        doc[key] = datetime.fromisoformat(doc[key])
    return doc


def outcome_entry(claim: Doc, action: str, at: datetime, hour: str) -> Doc:
    """The consent-log entry of a charge's outcome (`<charge>:charged` / `<charge>:failed`)."""
    cid = claim["_id"]
    return {
        "_id": f"{cid}:{'charged' if action == 'charged' else 'failed'}",
        "msisdn": claim["msisdn"],
        "subscription_id": claim["subscription_id"],
        "code": claim["code"],
        "action": action,
        "channel": "system",
        "charge_id": cid,
        "kind": claim["kind"],
        "period": claim["period"],
        "amount_vnd": claim["amount_vnd"],
        "month": claim.get("month"),
        "at": at,
        "hour": hour,
    }


def failure(
    claim: Doc,
    reason: FailureReason,
    at: datetime,
    hour: str,
    common: dict[str, Any],
    available_vnd: int | None = None,
) -> tuple[Doc, AnyEvent]:
    """A charge not taken (refused by the account service, or over the monthly cap): its
    consent-log entry and its `VasChargeFailed`."""
    cid = claim["_id"]
    entry = {**outcome_entry(claim, "charge_failed", at, hour), "reason": reason}
    failed = VasChargeFailed.new(
        **common,
        event_id=event_id_for(cid, "failed"),
        data=VasChargeFailedData(
            charge_id=cid,
            subscription_id=claim["subscription_id"],
            code=claim["code"],
            kind=claim["kind"],
            amount_vnd=claim["amount_vnd"],
            reason=reason,
            available_vnd=available_vnd,
            failed_at=at,
        ),
    )
    return entry, failed


def answer_entry(claim: Doc, answer: AnyEvent) -> tuple[Doc, list[AnyEvent]]:
    """The consent-log entry an answer makes, and the events it announces."""
    cid = claim["_id"]
    at = answer.occurred_at
    common: dict[str, Any] = {
        "subject": claim["msisdn"],
        "producer": PRODUCER,
        "correlation_id": answer.correlation_id,
        "causation_id": str(answer.event_id),
    }
    if isinstance(answer, BalanceChangeRejected):
        entry, failed = failure(claim, answer.data.reason, at, hour_of(at), common, answer.data.available)
        return entry, [failed]
    entry = outcome_entry(claim, "charged", at, hour_of(at))
    events: list[AnyEvent] = [
        VasCharged.new(
            **common,
            event_id=event_id_for(cid, "charged"),
            data=VasChargedData(
                charge_id=cid,
                subscription_id=claim["subscription_id"],
                code=claim["code"],
                kind=claim["kind"],
                amount_vnd=claim["amount_vnd"],
                period_start=claim["period_start"],
                period_end=claim["period_end"],
                charged_at=at,
            ),
        )
    ]
    if claim["period"] > 0:
        events.append(
            VasRenewed.new(
                **common,
                event_id=event_id_for(cid, "renewed"),
                data=VasRenewedData(
                    subscription_id=claim["subscription_id"],
                    code=claim["code"],
                    charge_id=cid,
                    period=claim["period"],
                    period_start=claim["period_start"],
                    period_end=claim["period_end"],
                ),
            )
        )
    if claim.get("bucket"):
        bucket = claim["bucket"]
        events.append(
            DataPackPurchased.new(
                **common,
                event_id=event_id_for(cid, "pack"),
                data=DataPackPurchasedData(
                    subscription_id=claim["subscription_id"],
                    code=claim["code"],
                    charge_id=cid,
                    amount_vnd=claim["amount_vnd"],
                    bucket_id=bucket["bucket_id"],
                    quota_kb=bucket["quota_kb"],
                    expires_at=bucket["expires_at"],
                    renewal=claim["period"] > 0,
                    auto_renew=bool(claim.get("auto_renew", True)),
                ),
            )
        )
    return entry, events
