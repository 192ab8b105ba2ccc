"""Applies payment and usage events to balances: once each, in order, never below zero.

Runs inside the `account-service` consumer group, the only writer of `balances`
documents: Kafka gives each subscriber's partition to one consumer, so one subscriber's
events are applied by one task, in order (FerretDB would lose concurrent writes to one
document; on MongoDB the versioned write also makes a second writer fail, not corrupt).

Per batch: read the touched balances, decide in the domain, write each document ONCE with
its new state, the ids it applied and the events it implies (the outbox), then project
ledger/charges/top-up rows and publish the events. The batch is committed after all that;
a crash anywhere redelivers it, the documents show what was applied, and the stored
events are published again (consumers dedupe them by event id).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import (
    BalanceChanged,
    BalanceChangedData,
    BalanceChangeRejected,
    BalanceChangeRejectedData,
)
from mobi_contracts.events.network import UsageRecorded
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from mobi_contracts.topics import ACCOUNT_EVENTS
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Conflict, Store, insert_versioned, save_versioned
from servicekit.outbox import outbox_entries

from .domain.balances import Balances, Outcome, apply_usage, credit_main, from_document, to_document
from .store import BALANCES, BILLS, CHARGES, LEDGER, SUBSCRIBERS, TOPUPS

PRODUCER = "account-service"
_ENTRY_NAMESPACE = uuid.UUID("6f1d7a52-3c0e-4d7b-9a55-8f2d0c9b1e41")

TOPUP_LABELS = {
    "card_international": "Top-up by international card",
    "card_domestic": "Top-up by domestic card",
    "scratch_card": "Top-up by scratch card",
}


def idempotency_key(event: AnyEvent) -> str:
    """What makes an effect unique: the business id where there is one, else the event id."""
    if isinstance(event, TopupRecorded):
        return f"topup:{event.data.topup_id}"
    if isinstance(event, UsageRecorded):
        return f"usage:{event.data.usage_id}"
    return str(event.event_id)


@dataclass
class _Subscriber:
    state: Balances
    rev: int | None  # None: no document yet
    stored_outbox: list[dict[str, Any]]
    fresh: list[tuple[AnyEvent, Outcome]] = field(default_factory=list)
    replayed: list[AnyEvent] = field(default_factory=list)
    produced: list[AnyEvent] = field(default_factory=list)  # events implied by `fresh`


class LedgerService:
    def __init__(self, store: Store, publisher: EventPublisher, topic: Topic = ACCOUNT_EVENTS) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic

    async def apply(self, events: list[AnyEvent]) -> None:
        balance_events = [e for e in events if isinstance(e, TopupRecorded | UsageRecorded)]
        bills = [e for e in events if isinstance(e, BillPaid)]
        subscribers = await self._load(balance_events)
        now = datetime.now(UTC)
        for event in balance_events:
            self._decide(subscribers[event.subject], event, now)
        await self._save(subscribers, now)
        produced = self._produced_events(subscribers)
        await self._project(subscribers, produced)
        await self._mark_bills_paid(bills)
        await self.publisher.publish(self.topic.name, produced)

    async def _load(self, events: Sequence[AnyEvent]) -> dict[str, _Subscriber]:
        numbers = list(dict.fromkeys(e.subject for e in events))
        docs = await self.store.find_by_ids(BALANCES, numbers)
        missing = [n for n in numbers if n not in docs]
        plans = await self.store.find_by_ids(SUBSCRIBERS, missing) if missing else {}
        loaded = {}
        for number in numbers:
            doc = docs.get(number)
            if doc:
                loaded[number] = _Subscriber(from_document(doc), doc["rev"], doc.get("outbox", []))
            else:
                plan = plans.get(number, {}).get("plan", "prepaid")
                loaded[number] = _Subscriber(Balances(msisdn=number, plan=plan), None, [])
        return loaded

    def _decide(self, sub: _Subscriber, event: AnyEvent, now: datetime) -> None:
        key = idempotency_key(event)
        if sub.state.has_applied(key):
            sub.replayed.append(event)
            return
        if isinstance(event, TopupRecorded):
            label = TOPUP_LABELS.get(event.data.method, "Top-up")
            state, outcome = credit_main(sub.state, event.data.amount_vnd, "topup", label)
        elif isinstance(event, UsageRecorded):
            d = event.data
            state, outcome = apply_usage(
                sub.state,
                kind=d.kind,
                quantity=d.quantity,
                charge_vnd=d.charge_vnd,
                now=now,
                description=f"{d.kind} {d.quantity} {d.unit}",
            )
        else:  # pragma: no cover - filtered by apply()
            raise ValueError(f"no balance rule for {event.event_type}")
        sub.state = state.remember(key)
        sub.fresh.append((event, outcome))

    async def _save(self, subscribers: dict[str, _Subscriber], now: datetime) -> None:
        async def save(sub: _Subscriber) -> None:
            sub.produced = list(_events_for(sub.state.msisdn, sub.fresh))
            entries = outbox_entries(self.topic, sub.produced)
            changes = {**to_document(sub.state), "outbox": entries, "updated_at": now}
            if sub.rev is None:
                await insert_versioned(self.store, BALANCES, {"_id": sub.state.msisdn, **changes})
            else:
                await save_versioned(self.store, BALANCES, sub.state.msisdn, sub.rev, changes)
            sub.stored_outbox = entries

        try:
            await self.store.bounded_all(save(s) for s in subscribers.values() if s.fresh)
        except Conflict as exc:
            # Someone else wrote a balance we read (a rebalance overlap): reload and redo.
            raise TransientError(str(exc)) from exc

    def _produced_events(self, subscribers: dict[str, _Subscriber]) -> list[AnyEvent]:
        events: list[AnyEvent] = []
        for sub in subscribers.values():
            events.extend(sub.produced)
            replayed_ids = {str(e.event_id) for e in sub.replayed}
            events.extend(_parse_stored(e) for e in sub.stored_outbox if e.get("cause") in replayed_ids)
        return events

    async def _project(self, subscribers: dict[str, _Subscriber], produced: list[AnyEvent]) -> None:
        causes = {str(e.event_id): e for sub in subscribers.values() for e in _causes(sub)}
        changes_by_cause: dict[str, list[BalanceChangedData]] = defaultdict(list)
        ledger_rows = []
        for event in produced:
            if isinstance(event, BalanceChanged):
                changes_by_cause[event.data.cause_event_id].append(event.data)
                ledger_rows.append(_ledger_row(event))
        topups, charges = [], []
        for cause_id, cause in causes.items():
            applied = changes_by_cause.get(cause_id)
            if not applied:
                continue  # refused: nothing to show in histories
            if isinstance(cause, TopupRecorded):
                topups.append(_topup_row(cause, applied))
            elif isinstance(cause, UsageRecorded):
                charges.append(_charge_row(cause, applied))
        await asyncio.gather(
            self.store.insert_new(LEDGER, ledger_rows),
            self.store.insert_new(TOPUPS, topups),
            self.store.insert_new(CHARGES, charges),
        )

    async def _mark_bills_paid(self, bills: list[BillPaid]) -> None:
        async def mark(event: BillPaid) -> None:
            result = await self.store[BILLS].update_one(
                {"_id": event.data.bill_id, "msisdn": event.subject},
                {
                    "$set": {
                        "status": "paid",
                        "paid_at": event.data.paid_at,
                        "payment_id": event.data.payment_id,
                    }
                },
            )
            if result.matched_count == 0:
                raise ValueError(f"bill {event.data.bill_id} of {event.subject} does not exist")

        await self.store.bounded_all(mark(e) for e in bills)


def _causes(sub: _Subscriber) -> Iterable[AnyEvent]:
    yield from (event for event, _ in sub.fresh)
    yield from sub.replayed


def _events_for(msisdn: str, decided: list[tuple[AnyEvent, Outcome]]) -> Iterable[AnyEvent]:
    for cause, outcome in decided:
        common: dict[str, Any] = {
            "subject": msisdn,
            "producer": PRODUCER,
            "correlation_id": cause.correlation_id,
        }
        for change in outcome.changes:
            entry_id = change.entry_id(idempotency_key(cause))
            yield BalanceChanged.new(
                **common,
                causation_id=str(cause.event_id),
                event_id=uuid.uuid5(_ENTRY_NAMESPACE, entry_id),
                data=BalanceChangedData(
                    entry_id=entry_id,
                    account=change.account,
                    unit=change.unit,
                    delta=change.delta,
                    balance_after=change.balance_after,
                    reason=change.reason,
                    cause_event_id=str(cause.event_id),
                    cause_event_type=cause.event_type,
                    description=change.description,
                ),
            )
        if outcome.refusal:
            r = outcome.refusal
            yield BalanceChangeRejected.new(
                **common,
                causation_id=str(cause.event_id),
                event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{idempotency_key(cause)}:refused"),
                data=BalanceChangeRejectedData(
                    cause_event_id=str(cause.event_id),
                    cause_event_type=cause.event_type,
                    account=r.account,
                    requested_delta=-r.requested,
                    available=r.available,
                    reason=r.reason,
                ),
            )


def _parse_stored(entry: dict[str, Any]) -> AnyEvent:
    return parse_event(entry["value"].encode())


def _ledger_row(event: BalanceChanged) -> dict[str, Any]:
    d = event.data
    return {
        "_id": d.entry_id,
        "msisdn": event.subject,
        "account": d.account,
        "unit": d.unit,
        "delta": d.delta,
        "balance_after": d.balance_after,
        "reason": d.reason,
        "description": d.description,
        "cause_event_id": d.cause_event_id,
        "cause_event_type": d.cause_event_type,
        "at": event.occurred_at,
    }


def _topup_row(cause: TopupRecorded, applied: list[BalanceChangedData]) -> dict[str, Any]:
    d = cause.data
    return {
        "_id": d.topup_id,
        "msisdn": cause.subject,
        "amount_vnd": d.amount_vnd,
        "method": d.method,
        "payer_msisdn": d.payer_msisdn,
        "payment_id": d.payment_id,
        "balance_after": applied[-1].balance_after,
        "at": d.recorded_at,
    }


def _charge_row(cause: UsageRecorded, applied: list[BalanceChangedData]) -> dict[str, Any]:
    d = cause.data
    return {
        "_id": d.usage_id,
        "msisdn": cause.subject,
        "kind": d.kind,
        "quantity": d.quantity,
        "unit": d.unit,
        "amount_vnd": -sum(c.delta for c in applied if c.unit == "vnd" and c.account != "unbilled")
        + sum(c.delta for c in applied if c.account == "unbilled"),
        "data_kb": -sum(c.delta for c in applied if c.unit == "kb"),
        "counterpart": d.counterpart,
        "description": applied[0].description,
        "at": d.started_at,
    }
