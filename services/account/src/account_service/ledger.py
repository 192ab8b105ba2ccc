"""Applies payment, usage, VAS and loyalty events to balances: once each, in order, never
below zero. Top-ups credit, usage debits (domain.balances); VAS charges and refunds, plan
changes and loyalty rewards are decided the same way (domain.grants), and their answers
(BalanceChanged, BalanceChangeRejected, RedemptionGranted/Refused) are in the decision
(decisions: the rule and the journal document; announcements: the events derived from it).

Runs in two lanes, two consumer groups of the account service (contracts: ACCOUNT_LEDGER_GROUP
for money in and what subscribers ask for, ACCOUNT_USAGE_GROUP for the charging feed), so a
top-up never waits behind a backlog of usage. Kafka gives each subscriber's partition of a lane
to one consumer, so one subscriber's events of a lane are decided by one task, in order; the two
lanes meet on the journal, whose unique (msisdn, seq) lets only one of them decide each seq. In
one process they share the states they decided (memory.py); a seq the other lane took first is
decided again at once on the journal (`_claim`), never by retrying the batch.

The journal is the truth, and a decision costs an append. Every decision about an event (a
credit, a debit, a refusal) is a journal document whose `_id` is the event's business key
(`topup:<id>`, `usage:<id>`, `vas:<charge id>`, `redemption:<id>`, ...) and which holds the
subscriber's next sequence number, the ledger entries, the state after it (`state_after`), and
what the events it implies say (they are derived from it, with ids derived from the key). The
unique index on (msisdn, seq) makes it the claim: a second decision on the same event, or on
the same state, cannot be inserted. Per batch:

1. decide every event on the subscriber's last state: kept in memory between batches, else
   resumed from the read cache in Redis (one round trip for the batch; each entry names the
   snapshot it stands on), else its snapshot; giving seq N+1, N+2, ...;
2. insert the batch's journal documents: each subscriber's first decision in one unordered
   `insert_many` (it names at once every subscriber whose state was stale or whose event is
   a replay), the rest of the claimed runs in one ordered `insert_many` (a subscriber refused
   there is dropped and the rest inserted again); refused subscribers are settled carefully;
3. project the top-up and charge history rows (history), write the balance snapshots that are
   due (at most a budget per batch, domain.snapshots: a snapshot follows the journal lazily and
   may lag it), refresh the read cache (versioned by seq), publish the events.

No balance document is written in the hot path: the `balances` document is a snapshot, and a
subscriber's current state is the snapshot rolled forward to its newest journal decision
(balance_state). A snapshot moved by another writer (a rebalance overlap, the other lane) only
makes this consumer forget its copy of the state: the journal decided, nothing is lost.

When step 2 meets an existing key (a replay, a duplicate publish, a stale state after a restart,
a rebalance or the other lane's decision), or the batch ends a tenancy of the subscriber
(SubscriberOwnerChanged, ...Terminated, ...PortedOut: the previous tenancy's balances go,
domain.tenancy, decided on the journal as it stands), the subscriber is settled carefully, one
event at a time, on the state the journal holds (one indexed find for its newest decision):
events whose key is in the journal are replays (their events are published again, nothing
else changes), the rest are decided afresh. A crash anywhere redelivers the batch; replaying a
whole topic from offset 0 changes no balance.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.payment import BillPaid
from mobi_contracts.events.subscriber import SubscriberLifecycleData
from mobi_contracts.events.vas import VasRefundRequested
from mobi_contracts.topics import ACCOUNT_EVENTS, TENANCY_ENDED_EVENTS
from servicekit.cache import VersionedCache
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Conflict, Doc, Store, insert_versioned, save_versioned
from servicekit.tenancy import EPOCH

from . import topup_timing
from .announcements import PRODUCER, implied_events
from .balance_state import Account, cache_entry, current_account, from_cached, snapshots_of
from .decisions import NEEDS_REGISTRY, idempotency_key, is_ledger_decision, journal_document, outcome_of
from .domain.balances import to_document
from .domain.provisioning import owner_since_of
from .domain.snapshots import Lag, SnapshotPolicy
from .domain.tenancy import kept_by_tenancy
from .history import history_rows
from .memory import LedgerMemory
from .store import BALANCES, BILLS, CHARGES, JOURNAL, SUBSCRIBERS, TOPUPS

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 20  # careful claims of one event the journal may refuse before the batch is retried


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
        memory: LedgerMemory | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.cache = cache
        self.snapshots = snapshots or SnapshotPolicy()
        self.memory = memory or LedgerMemory()  # shared by the process's lanes (memory.py)

    async def apply(self, events: list[AnyEvent]) -> None:
        balance_events = [e for e in events if is_ledger_decision(e)]
        bills = [e for e in events if isinstance(e, BillPaid)]
        subscribers = await self._load(balance_events)  # reads: the other lane may decide meanwhile
        # The process's lanes take turns from taking a remembered state to journaling the
        # decisions on it: one writer per subscriber, so neither meets the seq the other just
        # took (memory.py). The turn holds no read of the store or the cache.
        async with self.memory.journal_turn:
            self._catch_up(subscribers)
            now = _to_the_millisecond(datetime.now(UTC))  # as the store keeps it: events derived again match
            try:
                await self._decide_and_journal(subscribers, now)
            except BaseException:
                self.memory.forget(subscribers)  # what was journaled is read again on the retry
                raise
            for sub in subscribers.values():
                self.memory.remember(sub.account)
        # What readers see is in place before the events announce it, and the history rows and
        # the plan before the cached balances show the change (the app reads them together).
        # Snapshots are no reader's: they follow, beside the events.
        await asyncio.gather(
            self._project(subscribers.values()),
            self._mark_bills_paid(bills),
            self._project_plans([doc for s in subscribers.values() for doc in s.applied]),
        )
        await self._refresh_cache(subscribers.values())
        applied = [doc for sub in subscribers.values() for doc in sub.applied]
        topup_timing.observe_credited(
            (pair for sub in subscribers.values() for pair in zip(sub.events, sub.applied, strict=True)),
            decided_at=now,
            service=PRODUCER,
        )
        await asyncio.gather(
            self.publisher.publish_serialized(
                [e for doc in applied for e in implied_events(doc, self.topic)]
            ),
            self._write_snapshots(now),
        )

    async def _decide_and_journal(self, subscribers: dict[str, _Subscriber], now: datetime) -> None:
        """Decide each subscriber's events on its state, journal them; the subscribers whose
        decisions met the journal (or whose tenancy ends) are settled carefully on it."""
        # A tenancy's end is decided on the journal as it stands: such subscribers go carefully.
        ending = {
            s for s in subscribers.values() if any(isinstance(e, TENANCY_ENDED_EVENTS) for e in s.events)
        }
        for sub in subscribers.values():
            if sub not in ending:
                for event in sub.events:
                    sub.decided.append(self._decide(sub, event, now))
        careful = await self._journal(subscribers) | ending
        for sub in subscribers.values():
            if sub not in careful:
                sub.applied.extend(sub.decided)  # journaled: decided, nothing else to write
        await asyncio.gather(*(self._settle_carefully(s, now) for s in careful))

    # -- loading and deciding ------------------------------------------------------------------

    async def _load(self, events: Sequence[AnyEvent]) -> dict[str, _Subscriber]:
        numbers = list(dict.fromkeys(e.subject for e in events))
        remembered = {n: self.memory.get(n) for n in numbers}
        known = {n: account for n, account in remembered.items() if account is not None}
        known |= await self._cached([n for n in numbers if n not in known])
        # A snapshot (or a cache entry) may lag its journal: the first decision on it then meets
        # the unique (msisdn, seq) index and the subscriber is settled carefully (see _journal).
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

    def _catch_up(self, subscribers: dict[str, _Subscriber]) -> None:
        """Each subscriber on the state the process remembers now: the other lane may have
        decided on it while this batch was reading."""
        for number, sub in subscribers.items():
            remembered = self.memory.get(number)
            if remembered is not None:
                sub.account = sub.start = remembered

    async def _cached(self, numbers: list[str]) -> dict[str, Account]:
        """Subscribers this consumer does not remember, resumed from the read cache (one round
        trip to Redis instead of a store read each: the cold subscribers of a batch after a
        restart, a rebalance, or beyond memory.STATE_MEMORY)."""
        if self.cache is None or not numbers:
            return {}
        entries = await self.cache.get_many(numbers)
        resumed = {n: from_cached(payload) for n, (_, payload) in entries.items()}
        return {n: account for n, account in resumed.items() if account is not None}

    def _decide(self, sub: _Subscriber, event: AnyEvent, now: datetime) -> Doc:
        state, outcome = outcome_of(
            event,
            sub.account.state,
            now=now,
            status=sub.status,
            owner_since=sub.owner_since,
            charges=sub.charges,
            kept=sub.kept,
        )
        after = state.next_decision()
        sub.account = sub.account.decided(after, now)
        return journal_document(event, outcome, after, now)

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
        account = await self._journal_state(number)
        keys = [idempotency_key(e) for e in sub.events]
        journal = await self.store.find_by_ids(JOURNAL, keys)
        for event, key in zip(sub.events, keys, strict=True):
            doc = journal.get(key)
            if doc is not None:
                if doc["seq"] > account.state.seq:  # journaled since we read the state
                    raise TransientError(f"journal {key} at seq {doc['seq']} is ahead of {number}")
                sub.applied.append(doc)  # a replay: publish its events again, change nothing
                continue
            doc, account = await self._claim(sub, event, key, account, now)
            journal[key] = doc  # the same key again in this batch is a replay of it
            sub.applied.append(doc)
        sub.account = account

    async def _claim(
        self, sub: _Subscriber, event: AnyEvent, key: str, account: Account, now: datetime
    ) -> tuple[Doc, Account]:
        """Decide `event` on `account` and insert the decision. The other lane (or a member
        overlapping a rebalance) may take the same seq first: then the event is decided again on
        the journal as it now stands, at once (a retry of the whole batch would wait seconds)."""
        number = account.state.msisdn
        for _ in range(CLAIM_ATTEMPTS):
            sub.account = account
            if isinstance(event, TENANCY_ENDED_EVENTS):
                sub.kept = await self._kept_since(number, event.data, account.state.seq)
            doc = self._decide(sub, event, now)
            try:
                await self.store[JOURNAL].insert_one(doc)
            except DuplicateKeyError:
                taken = (await self.store.find_by_ids(JOURNAL, [key])).get(key)
                account = await self._journal_state(number)
                if taken is not None:  # decided by an overlapping member: a replay
                    return taken, account
                continue
            return doc, sub.account
        raise TransientError(f"{number}: the journal moved under {CLAIM_ATTEMPTS} claims in a row")

    async def _journal_state(self, number: str) -> Account:
        account = await current_account(self.store, number)
        return account or (await snapshots_of(self.store, [number]))[number]

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

    async def _project(self, subscribers: Iterable[_Subscriber]) -> None:
        """The history rows of the applied decisions (each event's decision, new or a replay)."""
        rows: dict[str, list[Doc]] = {TOPUPS: [], CHARGES: []}
        for sub in subscribers:
            for event, doc in zip(sub.events, sub.applied, strict=True):
                for collection, row in history_rows(event, doc["entries"]).items():
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
        async with self.memory.snapshot_turn:
            lagging = heapq.nlargest(limit, self.memory.lagging(), key=lambda a: a.behind)
            await self._write(lagging, datetime.now(UTC))

    async def _write_snapshots(self, now: datetime) -> None:
        """Snapshots that are due (domain.snapshots), in bulk."""
        async with self.memory.snapshot_turn:
            lagging = list(self.memory.lagging())
            lags = (Lag(a.state.msisdn, a.behind, a.lagging_since or now) for a in lagging)
            due = set(self.snapshots.due(lags, now))
            await self._write([a for a in lagging if a.state.msisdn in due], now)

    async def _write(self, due: list[Account], now: datetime) -> None:
        """A snapshot written meanwhile by another writer (a rebalance overlap) only makes us
        forget the state: the journal decided."""
        written = await self.store.bounded_all(self._write_snapshot(a, now) for a in due)
        moved = []
        for account, ok in zip(due, written, strict=True):
            if ok:
                self.memory.remember(account.snapshotted())
            else:
                moved.append(account)
        self.memory.forget(a.state.msisdn for a in moved)
        if self.cache is not None:
            # Their entries name the old snapshot: rewritten naming none, so the next resume
            # reads the store (an entry of a newer decision is not replaced).
            await self.cache.put_many([cache_entry(a, resumable=False) for a in moved])

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
            await self.cache.put_many([self._cache_entry(s.account) for s in subscribers])

    def _cache_entry(self, decided: Account) -> tuple[str, int, bytes]:
        """The entry of a subscriber's state, naming its snapshot as this consumer remembers it
        (just written, maybe); a forgotten one's entry names none, so it is resumed from the
        store (its snapshot moved under another writer)."""
        remembered = self.memory.get(decided.state.msisdn)
        if remembered is not None and remembered.state.seq == decided.state.seq:
            return cache_entry(remembered)
        return cache_entry(decided, resumable=False)


def _to_the_millisecond(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
