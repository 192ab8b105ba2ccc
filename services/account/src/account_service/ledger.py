"""Applies payment, usage, VAS and loyalty events to balances: once each, in order, never
below zero. Top-ups credit, usage debits (domain.balances); VAS charges and refunds, plan
changes and loyalty rewards are decided the same way (domain.grants), and their answers
(BalanceChanged, BalanceChangeRejected, RedemptionGranted/Refused) are in the decision.

Runs inside the `account-service` consumer group: Kafka gives each subscriber's partition to
one consumer, so one subscriber's events are decided by one task, in order.

The journal is the truth, and a decision costs an append. Every decision about an event (a
credit, a debit, a refusal) is a journal document whose `_id` is the event's business key
(`topup:<id>`, `usage:<id>`, `vas:<charge id>`, `redemption:<id>`, ...) and which holds the
subscriber's next sequence number, the ledger entries, the state after it (`state_after`)
and the events it implies. The journal has a unique index on (msisdn, seq), so it is the
claim: a second decision on the same event, or on the same state, cannot be inserted. Per
batch:

1. decide every event on the subscriber's last state (kept in memory between batches, else
   its snapshot), giving seq N+1, N+2, ...;
2. insert the batch's journal documents: each subscriber's first decision in one unordered
   `insert_many` (it names at once every subscriber whose state was stale or whose event is
   a replay), the rest of the claimed runs in one ordered `insert_many` (a subscriber refused
   there is dropped and the rest inserted again); refused subscribers are settled carefully;
3. project the top-up and charge history rows, write the balance snapshots that are due (at
   most a budget per batch, domain.snapshots: a snapshot follows the journal lazily and may
   lag it), refresh the read cache (versioned by seq), publish the events.

No balance document is written in the hot path: the `balances` document is a snapshot, and a
subscriber's current state is the snapshot rolled forward to its newest journal decision
(balance_state). A snapshot moved by another writer (a rebalance overlap) only makes this
consumer forget its copy of the state: the journal decided, nothing is lost.

When step 2 meets an existing key (a replay, a duplicate publish, a stale state after a restart
or a rebalance), or the batch ends a tenancy of the subscriber (SubscriberOwnerChanged,
...Terminated, ...PortedOut: the previous tenancy's balances go, domain.tenancy, decided on the
journal as it stands), the subscriber is settled carefully, one event at a time, on the state
the journal holds (one indexed find for its newest decision): events whose key is in the
journal are replays (their stored events are published again, nothing else changes), the rest
are decided afresh. A crash anywhere redelivers the batch; replaying a whole topic from offset
0 changes no balance.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import (
    BalanceChanged,
    BalanceChangedData,
    BalanceChangeRejected,
    BalanceChangeRejectedData,
)
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    RedemptionGranted,
    RedemptionGrantedData,
    RedemptionRefused,
    RedemptionRefusedData,
)
from mobi_contracts.events.network import UsageRecorded
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from mobi_contracts.events.subscriber import SubscriberLifecycleData
from mobi_contracts.events.vas import (
    PlanChanged,
    VasChargeRequested,
    VasChargeRequestedV2,
    VasRefundRequested,
)
from mobi_contracts.topics import ACCOUNT_EVENTS, TENANCY_ENDED_EVENTS
from servicekit.buckets import hour_of
from servicekit.cache import VersionedCache
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Conflict, Doc, Store, insert_versioned, save_versioned
from servicekit.outbox import outbox_entries
from servicekit.tenancy import EPOCH

from . import topup_timing
from .balance_state import Account, cache_entry, current_account, snapshots_of
from .domain.balances import (
    ANNOUNCED_UNITS,
    Balances,
    Change,
    Outcome,
    apply_usage,
    credit_main,
    to_document,
)
from .domain.grants import (
    Grant,
    change_plan,
    charge_vas,
    grant_airtime,
    grant_data,
    new_allowance,
    new_bucket,
    refund_vas,
)
from .domain.provisioning import owner_since_of
from .domain.snapshots import Lag, SnapshotPolicy
from .domain.tenancy import end_tenancy, kept_by_tenancy
from .store import BALANCES, BILLS, CHARGES, JOURNAL, SUBSCRIBERS, TOPUPS

log = logging.getLogger(__name__)

PRODUCER = "account-service"
_ENTRY_NAMESPACE = uuid.UUID("6f1d7a52-3c0e-4d7b-9a55-8f2d0c9b1e41")
STATE_MEMORY = 50_000  # subscribers whose last state the consumer keeps between batches

TOPUP_LABELS = {
    "card_international": "Top-up by international card",
    "card_domestic": "Top-up by domestic card",
    "scratch_card": "Top-up by scratch card",
}


# The events that are decisions on balances, and the journal `kind` each is recorded as.
DECIDED: dict[type[AnyEvent], str] = {
    TopupRecorded: "topup",
    UsageRecorded: "usage",
    VasChargeRequested: "vas_charge",
    VasChargeRequestedV2: "vas_charge",
    VasRefundRequested: "vas_refund",
    PlanChanged: "plan_change",
    PointsRedeemed: "redemption",
    **dict.fromkeys(TENANCY_ENDED_EVENTS, "tenancy_end"),
}
# Decisions that depend on the number being a live subscription (read from the registry).
NEEDS_REGISTRY = (VasChargeRequested, VasChargeRequestedV2, PointsRedeemed, PlanChanged)
VasCharge = VasChargeRequested | VasChargeRequestedV2


def idempotency_key(event: AnyEvent) -> str:
    """What makes an effect unique: the business id where there is one, else the event id."""
    if isinstance(event, TopupRecorded):
        return f"topup:{event.data.topup_id}"
    if isinstance(event, UsageRecorded):
        return f"usage:{event.data.usage_id}"
    if isinstance(event, VasChargeRequested | VasChargeRequestedV2):
        return f"vas:{event.data.charge_id}"
    if isinstance(event, VasRefundRequested):
        # One refund per charge, whatever the refund id (two ids for one charge credit once);
        # the VAS service's refund ids are `<charge id>:refund`, so older decisions keep their key.
        return f"vasrefund:{event.data.charge_id}:refund"
    if isinstance(event, PlanChanged):
        return f"plan:{event.data.change_id}"
    if isinstance(event, PointsRedeemed):
        return f"redemption:{event.data.redemption_id}"
    if isinstance(event, TENANCY_ENDED_EVENTS):
        return f"tenancy:{event.data.change_id}"
    return str(event.event_id)


def cause_at(event: AnyEvent) -> datetime:
    """When the cause of a decision happened (whose tenancy it belongs to: domain.tenancy)."""
    if isinstance(event, UsageRecorded):
        return event.data.started_at
    return event.occurred_at


def is_ledger_decision(event: AnyEvent) -> bool:
    """A redemption of a VAS is the VAS service's to grant: not ours, and not an error."""
    if isinstance(event, PointsRedeemed):
        return event.data.reward.granter == PRODUCER
    return type(event) in DECIDED


@dataclass(eq=False)  # compared by identity: kept in sets
class _Subscriber:
    account: Account
    start: Account
    events: list[AnyEvent] = field(default_factory=list)
    status: str | None = None  # in the subscriber registry (None: not our number); read if needed
    owner_since: datetime = EPOCH  # the number's current tenancy, in the registry; read if needed
    kept: dict[str, int] = field(default_factory=dict)  # what a tenancy's end leaves (domain.tenancy)
    charges: dict[str, Doc] = field(default_factory=dict)  # journaled VAS charges being refunded
    decided: list[Doc] = field(default_factory=list)  # journal documents of this batch
    applied: list[Doc] = field(default_factory=list)  # decided or replayed, in order (published)


class LedgerService:
    def __init__(
        self,
        store: Store,
        publisher: EventPublisher,
        topic: Topic = ACCOUNT_EVENTS,
        cache: VersionedCache | None = None,
        snapshots: SnapshotPolicy | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.cache = cache
        self.snapshots = snapshots or SnapshotPolicy()
        self._states: OrderedDict[str, Account] = OrderedDict()
        self._lagging: set[str] = set()  # remembered subscribers whose snapshot is behind

    async def apply(self, events: list[AnyEvent]) -> None:
        balance_events = [e for e in events if is_ledger_decision(e)]
        bills = [e for e in events if isinstance(e, BillPaid)]
        subscribers = await self._load(balance_events)
        now = datetime.now(UTC)
        # A tenancy's end is decided on the journal as it stands: such subscribers go carefully.
        ending = {
            s for s in subscribers.values() if any(isinstance(e, TENANCY_ENDED_EVENTS) for e in s.events)
        }
        for sub in subscribers.values():
            if sub not in ending:
                for event in sub.events:
                    sub.decided.append(self._decide(sub, event, now))
        try:
            careful = await self._journal(subscribers) | ending
            settled = [s for s in subscribers.values() if s not in careful]
            for sub in settled:
                sub.applied.extend(sub.decided)  # journaled: decided, nothing else to write
            await asyncio.gather(
                *(self._settle_carefully(s, now) for s in careful),
                self._project([doc for s in settled for doc in s.decided]),
                self._mark_bills_paid(bills),
            )
        except DuplicateKeyError as exc:
            # Another writer extended a subscriber we were settling (a rebalance overlap): retry.
            self._forget(subscribers)
            raise TransientError(str(exc)) from exc
        except BaseException:
            self._forget(subscribers)  # what was journaled is read again on the retry
            raise
        for sub in subscribers.values():
            self._remember(sub.account)
        # What readers see is in place before the events announce it, and the history rows and
        # the plan before the cached balances show the change (the app reads them together).
        await asyncio.gather(
            self._project([doc for s in careful for doc in s.applied]),
            self._project_plans([doc for s in subscribers.values() for doc in s.applied]),
            self._write_snapshots(now),
        )
        await self._refresh_cache(subscribers.values())
        applied = [doc for sub in subscribers.values() for doc in sub.applied]
        topup_timing.observe_credited(applied, decided_at=now, service=PRODUCER)
        await self.publisher.publish_serialized([e for doc in applied for e in doc["events"]])

    # -- loading and deciding ------------------------------------------------------------------

    async def _load(self, events: Sequence[AnyEvent]) -> dict[str, _Subscriber]:
        numbers = list(dict.fromkeys(e.subject for e in events))
        known = {n: self._states[n] for n in numbers if n in self._states}
        # A snapshot may lag its journal: the first decision on it then meets the unique
        # (msisdn, seq) index and the subscriber is settled carefully (see _journal).
        loaded = await snapshots_of(self.store, [n for n in numbers if n not in known])
        subscribers = {}
        for number in numbers:
            account = known.get(number) or loaded[number]
            subscribers[number] = _Subscriber(account=account, start=account)
        for event in events:
            subscribers[event.subject].events.append(event)
        asking = list(dict.fromkeys(e.subject for e in events if isinstance(e, NEEDS_REGISTRY)))
        for number, doc in (await self.store.find_by_ids(SUBSCRIBERS, asking)).items():
            subscribers[number].status = doc.get("status", "active")
            subscribers[number].owner_since = owner_since_of(doc)
        refunded = [f"vas:{e.data.charge_id}" for e in events if isinstance(e, VasRefundRequested)]
        for doc in (await self.store.find_by_ids(JOURNAL, refunded)).values():
            if doc["msisdn"] in subscribers:
                subscribers[doc["msisdn"]].charges[doc["_id"]] = doc
        return subscribers

    def _decide(self, sub: _Subscriber, event: AnyEvent, now: datetime) -> Doc:
        before = sub.account.state
        if isinstance(event, TopupRecorded):
            label = TOPUP_LABELS.get(event.data.method, "Top-up")
            state, outcome = credit_main(before, event.data.amount_vnd, "topup", label)
        elif isinstance(event, UsageRecorded):
            d = event.data
            state, outcome = apply_usage(
                before,
                kind=d.kind,
                quantity=d.quantity,
                charge_vnd=d.charge_vnd,
                now=now,
                description=f"{d.kind} {d.quantity} {d.unit}",
            )
        elif isinstance(event, VasChargeRequested | VasChargeRequestedV2):
            v = event.data
            state, outcome = charge_vas(
                before,
                status=sub.status,
                amount=v.amount_vnd,
                grants=_grants(event),
                description=v.description or f"{v.code} ({v.kind})",
                previous_owner=v.subscribed_at is not None and v.subscribed_at < sub.owner_since,
            )
        elif isinstance(event, VasRefundRequested):
            state, outcome = _refund(before, sub.charges.get(f"vas:{event.data.charge_id}"), event)
        elif isinstance(event, PlanChanged):
            state, outcome = change_plan(
                before, status=sub.status, billing=event.data.billing, plan_code=event.data.new_plan_code
            )
        elif isinstance(event, PointsRedeemed):
            previous_owner = event.data.redeemed_at < sub.owner_since
            state, outcome = _redeem(before, sub.status, event, previous_owner)
        elif isinstance(event, TENANCY_ENDED_EVENTS):
            state, outcome = end_tenancy(before, sub.kept, _ended_because(event))
        else:  # pragma: no cover - filtered by apply()
            raise ValueError(f"no balance rule for {event.event_type}")
        after = state.next_decision()
        sub.account = sub.account.decided(after, now)
        return self._journal_document(event, outcome, after, now)

    def _journal_document(self, cause: AnyEvent, outcome: Outcome, after: Balances, now: datetime) -> Doc:
        key = idempotency_key(cause)
        produced = list(_events_for(after.msisdn, cause, key, outcome, now))
        return {
            "_id": key,
            "msisdn": after.msisdn,
            "seq": after.seq,
            "at": now,
            "hour": hour_of(now),  # the audit finds recent decisions by it
            "kind": DECIDED[type(cause)],
            "cause_event_id": str(cause.event_id),
            "cause_event_type": cause.event_type,
            "cause_at": cause_at(cause),  # whose tenancy the decision belongs to (domain.tenancy)
            "entries": [_entry(key, c) for c in outcome.changes],
            "refused": vars(refused) if (refused := outcome.refusal or outcome.declined) else None,
            "state_after": to_document(after),
            "events": outbox_entries(self.topic, produced),
            "views": _views(cause, outcome.changes) if outcome.changes else {},
        }

    # -- writing ---------------------------------------------------------------------------------

    async def _journal(self, subscribers: dict[str, _Subscriber]) -> set[_Subscriber]:
        """Insert the batch's decisions; the subscribers whose decisions met an existing key
        (a replay, a duplicate publish, or a state that was stale: another writer, or a
        snapshot behind its journal), to be settled carefully.

        A subscriber's first decision is the one a stale state or a replay meets: the firsts
        go in one unordered insert, which names every refused subscriber at once (after a
        restart or in a replay, most of a batch). The rest of each claimed run goes in one
        ordered insert: nothing after a refused document is inserted, so a subscriber's
        inserted decisions always form an unbroken run; a refused subscriber (a rare race)
        is dropped and the rest inserted again, one call per refusal."""
        firsts = [sub.decided[0] for sub in subscribers.values() if sub.decided]
        claimed = [doc["msisdn"] for doc in await self.store.insert_fresh(JOURNAL, firsts)]
        refused = {doc["msisdn"] for doc in firsts} - set(claimed)
        rest = [doc for number in claimed for doc in subscribers[number].decided[1:]]
        while rest:
            inserted = await self.store.insert_run(JOURNAL, rest)
            if inserted == len(rest):
                break
            number = rest[inserted]["msisdn"]
            refused.add(number)
            rest = [doc for doc in rest[inserted:] if doc["msisdn"] != number]
        return {subscribers[number] for number in refused}

    async def _settle_carefully(self, sub: _Subscriber, now: datetime) -> None:
        """One subscriber whose batch met the journal: decide on the journal's state (the
        snapshot rolled forward to its newest decision), publish replays again, decide the rest
        one at a time."""
        number = sub.start.state.msisdn
        account = await current_account(self.store, number)
        if account is None:
            account = (await snapshots_of(self.store, [number]))[number]
        keys = [idempotency_key(e) for e in sub.events]
        journal = await self.store.find_by_ids(JOURNAL, keys)
        for event, key in zip(sub.events, keys, strict=True):
            doc = journal.get(key)
            if doc is not None:
                if doc["seq"] > account.state.seq:  # journaled since we read the state
                    raise TransientError(f"journal {key} at seq {doc['seq']} is ahead of {number}")
                sub.applied.append(doc)  # a replay: publish its events again, change nothing
                continue
            sub.account = account
            if isinstance(event, TENANCY_ENDED_EVENTS):
                sub.kept = await self._kept_since(number, event.data, account.state.seq)
            doc = self._decide(sub, event, now)
            await self.store[JOURNAL].insert_one(doc)
            account = sub.account
            journal[key] = doc  # the same key again in this batch is a replay of it
            sub.applied.append(doc)
        sub.account = account

    async def _kept_since(self, number: str, ended: SubscriberLifecycleData, seq: int) -> dict[str, int]:
        """What decisions of the tenancy after `ended` (up to `seq`, the state it is decided on)
        put in each account; decided since the change, so read by time (rare: no index)."""
        recent = await (
            self.store[JOURNAL]
            .find({"msisdn": number, "at": {"$gte": ended.changed_at}, "seq": {"$lte": seq}})
            .to_list()
        )
        return kept_by_tenancy(recent, ended.changed_at)

    # -- after the state is written ----------------------------------------------------------------

    async def _project(self, applied: list[Doc]) -> None:
        rows: dict[str, list[Doc]] = {TOPUPS: [], CHARGES: []}
        for doc in applied:
            for collection, row in doc.get("views", {}).items():
                rows[collection].append(row)
        await asyncio.gather(*(self.store.insert_new(c, r) for c, r in rows.items() if r))

    async def _project_plans(self, applied: list[Doc]) -> None:
        """The registry shows the subscriber's latest plan (the profile reads it). Guarded by the
        decision's seq, so a replayed old change never overwrites a newer one."""
        latest = {doc["msisdn"]: doc for doc in applied if doc.get("kind") == "plan_change"}
        await self.store.bounded_all(
            self.store[SUBSCRIBERS].update_one(
                {
                    "_id": number,
                    "$or": [{"plan_seq": {"$exists": False}}, {"plan_seq": {"$lt": doc["seq"]}}],
                },
                {
                    "$set": {
                        "plan": doc["state_after"]["plan"],
                        "plan_code": doc["state_after"]["plan_code"],
                        "plan_seq": doc["seq"],
                    }
                },
            )
            for number, doc in latest.items()
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

    async def flush_snapshots(self, limit: int = 500) -> None:
        """On shutdown: the most lagging snapshots, however recent, at most `limit` (a restart
        then finds them current; the rest cost it one careful pass each)."""
        lagging = (self._states[n] for n in self._lagging)
        await self._write(heapq.nlargest(limit, lagging, key=lambda a: a.behind), datetime.now(UTC))

    async def _write_snapshots(self, now: datetime) -> None:
        """Snapshots that are due (domain.snapshots), in bulk."""
        lags = (Lag(n, a.behind, a.lagging_since or now) for n in self._lagging for a in (self._states[n],))
        await self._write([self._states[n] for n in self.snapshots.due(lags, now)], now)

    async def _write(self, due: list[Account], now: datetime) -> None:
        """A snapshot written meanwhile by another writer (a rebalance overlap) only makes us
        forget the state: the journal decided."""
        written = await self.store.bounded_all(self._write_snapshot(a, now) for a in due)
        for account, ok in zip(due, written, strict=True):
            if ok:
                self._remember(account.snapshotted())
            else:
                self._forget_number(account.state.msisdn)

    async def _write_snapshot(self, account: Account, now: datetime) -> bool:
        state = account.state
        changes = {**to_document(state), "updated_at": now}
        try:
            if account.rev is None:
                await insert_versioned(self.store, BALANCES, {"_id": state.msisdn, **changes})
            else:
                await save_versioned(self.store, BALANCES, state.msisdn, account.rev, changes)
        except Conflict:
            log.info("snapshot moved by another writer", extra={"msisdn": state.msisdn})
            return False
        return True

    async def _refresh_cache(self, subscribers: Iterable[_Subscriber]) -> None:
        if self.cache is not None:
            await self.cache.put_many([cache_entry(s.account) for s in subscribers])

    def _remember(self, account: Account) -> None:
        number = account.state.msisdn
        self._states[number] = account
        self._states.move_to_end(number)
        if account.behind > 0:
            self._lagging.add(number)
        else:
            self._lagging.discard(number)
        while len(self._states) > STATE_MEMORY:
            forgotten, _ = self._states.popitem(last=False)
            self._lagging.discard(forgotten)  # its journal keeps it; a snapshot waits for its return

    def _forget_number(self, number: str) -> None:
        self._states.pop(number, None)
        self._lagging.discard(number)

    def _forget(self, subscribers: Iterable[str]) -> None:
        for number in subscribers:
            self._forget_number(number)


def _entry(key: str, change: Change) -> Doc:
    return {
        "entry_id": change.entry_id(key),
        "account": change.account,
        "unit": change.unit,
        "delta": change.delta,
        "balance_after": change.balance_after,
        "reason": change.reason,
        "description": change.description,
    }


def _grants(event: VasCharge) -> list[Grant]:
    """What a pack charge gives: v1 carries one data bucket, v2 a list of grants."""
    if isinstance(event, VasChargeRequested):
        pack = event.data.data_bucket
        return [new_bucket(pack.bucket_id, pack.name, pack.quota_kb, pack.expires_at)] if pack else []
    grants: list[Grant] = []
    for g in event.data.grants:
        if g.kind == "data":
            grants.append(new_bucket(g.grant_id, g.name, g.quantity, g.expires_at))
        else:
            grants.append(new_allowance(g.grant_id, g.kind, g.name, g.quantity, g.expires_at))
    return grants


def _refund(before: Balances, charge: Doc | None, event: VasRefundRequested) -> tuple[Balances, Outcome]:
    """A refund of a charge this subscriber was never charged is a data error (a dead letter
    for an operator to look at), never a credit."""
    d = event.data
    if charge is None:
        raise ValueError(f"refund {d.refund_id}: {event.subject} was never charged {d.charge_id}")
    entries = charge.get("entries", [])
    return refund_vas(
        before,
        amount=d.amount_vnd,
        charged_main=-sum(e["delta"] for e in entries if e["account"] == "main"),
        charged_unbilled=sum(e["delta"] for e in entries if e["account"] == "unbilled"),
        description=d.description or f"Refund of {d.charge_id}",
    )


def _ended_because(event: AnyEvent) -> str:
    return {
        "SubscriberOwnerChanged": "Number passed to a new owner: previous owner's balance closed",
        "SubscriberTerminated": "Subscription terminated: balance closed",
        "SubscriberPortedOut": "Number ported to another operator: balance closed",
    }.get(event.event_type, "Tenancy ended: balance closed")


def _redeem(
    before: Balances, status: str | None, event: PointsRedeemed, previous_owner: bool
) -> tuple[Balances, Outcome]:
    d = event.data
    reward = d.reward
    if reward.kind == "airtime" and reward.amount_vnd:
        return grant_airtime(
            before,
            status=status,
            amount=reward.amount_vnd,
            description=f"Loyalty reward {reward.catalog_code}: {reward.amount_vnd:,} VND airtime",
            previous_owner=previous_owner,
        )
    if reward.kind == "data" and reward.data_kb and reward.validity_days:
        gb = reward.data_kb / 1024**2
        size = f"{gb:g} GB" if gb >= 1 else f"{reward.data_kb // 1024} MB"
        return grant_data(
            before,
            status=status,
            redemption_id=d.redemption_id,
            name=f"Loyalty {reward.catalog_code}",
            quota_kb=reward.data_kb,
            redeemed_at=d.redeemed_at,
            validity_days=reward.validity_days,
            description=f"Loyalty reward {reward.catalog_code}: {size} data, {reward.validity_days} days",
            previous_owner=previous_owner,
        )
    # The contract's validator makes this unreachable; a data error (dead letter) if not.
    raise ValueError(f"redemption {d.redemption_id}: no rule for a {reward.kind} reward")


def _events_for(
    msisdn: str, cause: AnyEvent, key: str, outcome: Outcome, now: datetime
) -> Iterable[AnyEvent]:
    common: dict[str, Any] = {
        "subject": msisdn,
        "producer": PRODUCER,
        "correlation_id": cause.correlation_id,
        "causation_id": str(cause.event_id),
    }
    for change in outcome.changes:
        if change.unit not in ANNOUNCED_UNITS:
            continue  # voice and SMS allowances: journaled; BalanceChanged v1 carries vnd and kb
        entry_id = change.entry_id(key)
        yield BalanceChanged.new(
            **common,
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
            event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:refused"),
            data=BalanceChangeRejectedData(
                cause_event_id=str(cause.event_id),
                cause_event_type=cause.event_type,
                account=r.account,
                requested_delta=-r.requested,
                available=r.available,
                reason=r.reason,
            ),
        )
    if isinstance(cause, PointsRedeemed):
        yield _redemption_answer(cause, key, outcome, common, now)


def _redemption_answer(
    cause: PointsRedeemed, key: str, outcome: Outcome, common: dict[str, Any], at: datetime
) -> AnyEvent:
    """Loyalty's answer, in the same decision as the grant: it keeps or gives back the points."""
    answering: dict[str, Any] = {
        "redemption_id": cause.data.redemption_id,
        "granter": PRODUCER,
        "cause_event_id": str(cause.event_id),
    }
    if outcome.declined is not None:
        return RedemptionRefused.new(
            **common,
            event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:refused"),
            data=RedemptionRefusedData(
                **answering, reason=outcome.declined.reason, detail=outcome.declined.detail, refused_at=at
            ),
        )
    return RedemptionGranted.new(
        **common,
        event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:granted"),
        data=RedemptionGrantedData(
            **answering,
            granted_at=at,
            description=outcome.changes[0].description if outcome.changes else "",
        ),
    )


def _views(cause: AnyEvent, changes: Sequence[Change]) -> dict[str, Doc]:
    """History rows the app shows for an applied decision (refusals show nowhere)."""
    if isinstance(cause, TopupRecorded):
        d = cause.data
        row = {
            "_id": d.topup_id,
            "msisdn": cause.subject,
            "amount_vnd": d.amount_vnd,
            "method": d.method,
            "payer_msisdn": d.payer_msisdn,
            "payment_id": d.payment_id,
            "balance_after": changes[-1].balance_after,
            "at": d.recorded_at,
        }
        return {TOPUPS: row}
    if isinstance(cause, UsageRecorded):
        u = cause.data
        money = [c for c in changes if c.unit == "vnd"]
        return {
            CHARGES: {
                "_id": u.usage_id,
                "msisdn": cause.subject,
                "kind": u.kind,
                "quantity": u.quantity,
                "unit": u.unit,
                "amount_vnd": sum(abs(c.delta) for c in money),
                "data_kb": -sum(c.delta for c in changes if c.unit == "kb"),
                "counterpart": u.counterpart,
                "description": changes[0].description,
                "at": u.started_at,
            }
        }
    if isinstance(cause, VasChargeRequested | VasChargeRequestedV2):
        v = cause.data
        money = [c for c in changes if c.unit == "vnd" and c.delta]
        if not money:
            return {}  # a free pack or VAS: nothing to show among the charges
        return {
            CHARGES: {
                "_id": f"vas:{v.charge_id}",
                "msisdn": cause.subject,
                "kind": "vas",
                "quantity": 1,
                "unit": v.kind,
                "amount_vnd": abs(money[0].delta),
                "data_kb": 0,
                "counterpart": v.code,
                "description": money[0].description,
                "at": v.requested_at,
            }
        }
    return {}


def stored_events(doc: Doc) -> list[AnyEvent]:
    """The events a journal document implies (for checks and tools)."""
    return [parse_event(e["value"].encode()) for e in doc.get("events", [])]
