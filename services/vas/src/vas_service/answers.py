"""The account service's answers to charge requests, and the receipts they make.

`BalanceChanged` (reason `vas_charge`) and `BalanceChangeRejected` about a `VasChargeRequested`
become consent-log entries `<charge>:charged` / `<charge>:failed` (unique: a redelivered answer
records nothing twice) and the events `VasCharged` (+ `VasRenewed`, `DataPackPurchased`) or
`VasChargeFailed`, whose ids derive from the charge. A refused charge gives its share of the
monthly cap back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from redis.exceptions import RedisError

from mobi_contracts import AnyEvent
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.vas import (
    DataPackPurchased,
    DataPackPurchasedData,
    VasCharged,
    VasChargedData,
    VasChargeFailed,
    VasChargeFailedData,
    VasChargeRequested,
    VasRenewed,
    VasRenewedData,
)
from servicekit.buckets import hour_of
from servicekit.mongo import Doc

from .budget import Budget
from .charging import CHARGES_TOTAL, PRODUCER, ChargeDesk, memo_key, unmemo
from .domain.subscriptions import event_id_for
from .store import CHARGES, CONSENTS

log = logging.getLogger(__name__)
FailureReason = Literal["insufficient_funds", "no_such_account", "monthly_cap_reached"]


class Answers:
    def __init__(self, desk: ChargeDesk, budget: Budget) -> None:
        self.desk = desk
        self.store = desk.store
        self.budget = budget

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
        refused: list[Doc] = []
        for cause, answer in outcomes.items():
            claim = claims.get(cause)
            if claim is None:
                log.warning("answer to a charge we never requested", extra={"cause_event_id": cause})
                continue
            entry, implied = answer_entry(claim, answer)
            entries.append(entry)
            produced.extend(implied)
            if isinstance(answer, BalanceChangeRejected):
                refused.append(claim)
        await self.store.insert_new(CONSENTS, entries)
        await self.store.bounded_all(self.budget.release(c["msisdn"], c["_id"]) for c in refused)
        # Published on every delivery (ids are derived from the charge): a redelivered batch
        # whose entries exist still sends its events, which consumers recognise.
        await self.desk.publisher.publish(self.desk.topic.name, produced)
        for entry in entries:
            CHARGES_TOTAL.labels(self.desk.service, entry["kind"], entry["action"]).inc()

    async def _claims_for(self, event_ids: list[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        try:
            values = await self.desk.redis.mget([memo_key(e) for e in event_ids])
            for event_id, raw in zip(event_ids, values, strict=True):
                if isinstance(raw, bytes):
                    found[event_id] = unmemo(raw)
        except RedisError as exc:
            log.warning("charge memo unavailable", extra={"error": repr(exc)})
        missing = [e for e in event_ids if e not in found]
        docs = await self.store.bounded_all(self.store[CHARGES].find_one({"event_id": e}) for e in missing)
        for event_id, doc in zip(missing, docs, strict=True):
            if doc is not None:
                found[event_id] = doc
        return found


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
    data = next((g for g in claim.get("grants") or () if g["kind"] == "data"), None)
    if data is None and claim.get("bucket"):  # a slot from before packs had several grants
        data = {
            **claim["bucket"],
            "grant_id": claim["bucket"]["bucket_id"],
            "quantity": claim["bucket"]["quota_kb"],
        }
    if data is not None:
        events.append(
            DataPackPurchased.new(
                **common,
                event_id=event_id_for(cid, "pack"),
                data=DataPackPurchasedData(
                    subscription_id=claim["subscription_id"],
                    code=claim["code"],
                    charge_id=cid,
                    amount_vnd=claim["amount_vnd"],
                    bucket_id=data["grant_id"],
                    quota_kb=data["quantity"],
                    expires_at=data["expires_at"],
                    renewal=claim["period"] > 0,
                    auto_renew=bool(claim.get("auto_renew", True)),
                ),
            )
        )
    return entry, events
