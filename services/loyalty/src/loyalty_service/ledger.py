"""Points ledger: every change of a member's points once, in order, never below zero.

FerretDB 1.24 rewrites a whole document per update without a lock, so a conditional update
is no guard there (measured: 50 concurrent `{points: {$gte: 100}}`/`$inc: -100` on a
1,000-point document let 41 through and left 400; 50 `find_one_and_update` on 10 free codes
handed out 50). And an update costs what ~30 inserted documents do. So a change is decided by
a unique insert, and the ledger is the truth a wallet is read from:

1. decide the change on the member's last known state (kept in memory; else the wallet
   snapshot plus the ledger's last entry beyond it: `PointsLedger.wallet`);
2. insert the ledger entry: `_id` = the change's business key (`earn:topup:<id>`,
   `transfer:<id>:out`, `redeem:<id>`, ...), (member, seq+1) unique, and the state after it.
   A key that exists is a replay (the stored entry is the answer); a seq that exists means
   another change came first (another replica, or a state this process did not see): read
   the current state, decide again.
3. The wallet document is a snapshot, written lazily and in bulk (domain.snapshots: when far
   enough or long enough behind, a bounded number per batch); single-request changes (a
   transfer, a redemption, a job's change) still write theirs at once. A snapshot behind the
   ledger is never wrong, only slower to read.

The events a change implies are in its entry (`events`, and `outbox` until relayed), so a
change and its announcement are never separated. Changes of one member in this process also
queue on a lock (contention costs a wait, not a failed insert); across replicas the unique
(member, seq) decides.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.topics import LOYALTY_EVENTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending

from .domain.snapshots import MemberStates, SnapshotPolicy
from .domain.wallet import Change, Refused, Wallet, from_document, now_ms, to_document
from .metrics import POINTS, SNAPSHOTS
from .store import LEDGER, WALLETS

log = logging.getLogger(__name__)
ATTEMPTS = 30  # of deciding a change when others keep coming first
STATE_MEMORY = 50_000  # members whose last known state the process keeps


class NotMember(Exception):
    pass


class Contended(Exception):
    """Other changes of the member kept coming first: answer 503, the client retries."""


@dataclass(frozen=True)
class Decision:
    kind: str  # earn, transfer_out, transfer_in, redeem, reverse, expire, tier, enroll
    change: Change
    detail: dict[str, Any] = field(default_factory=dict)
    events: Sequence[AnyEvent] = ()
    counterpart: dict[str, Any] | None = None  # a transfer's credit still to apply


Decide = Callable[[Wallet], Decision]
MaybeDecide = Callable[[Wallet], Decision | None]


async def current_wallet(store: Store, msisdn: str) -> Wallet | None:
    """The member's current state from the store (None: not a member): every reader's way
    (views, transfers, redemptions, jobs, tests). The wallet snapshot, or the state after the
    ledger's last entry beyond it: two finds, however far the snapshot lags."""
    doc = await store[WALLETS].find_one({"_id": msisdn})
    return None if doc is None else (await _rolled(store, msisdn, doc))[1]


async def _rolled(store: Store, msisdn: str, snapshot_doc: Doc) -> tuple[Wallet, Wallet]:
    """(the snapshot, the current state)."""
    snapshot = from_document(msisdn, snapshot_doc)
    last = await (
        store[LEDGER]
        .find({"member": msisdn, "seq": {"$gt": snapshot.seq}}, {"state_after": 1})
        .sort("seq", DESCENDING)
        .limit(1)
        .to_list()
    )
    return snapshot, from_document(msisdn, last[0]["state_after"]) if last else snapshot


class PointsLedger:
    def __init__(
        self,
        store: Store,
        publisher: EventPublisher,
        service: str,
        topic: Topic = LOYALTY_EVENTS,
        snapshots: SnapshotPolicy = SnapshotPolicy(),  # frozen: shared safely
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.relay = OutboxRelay(store, publisher, service, LEDGER)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.states = MemberStates(snapshots, STATE_MEMORY)

    def lock(self, msisdn: str) -> asyncio.Lock:
        found = self._locks.get(msisdn)
        if found is None:
            found = asyncio.Lock()
            self._locks[msisdn] = found
        return found

    # -- reading -----------------------------------------------------------------------------

    async def wallet(self, msisdn: str) -> Wallet | None:
        """The member's current state from the store (`current_wallet`), remembered."""
        doc = await self.store[WALLETS].find_one({"_id": msisdn})
        return None if doc is None else await self._current(msisdn, doc)

    async def _current(self, msisdn: str, snapshot_doc: Doc) -> Wallet:
        snapshot, current = await _rolled(self.store, msisdn, snapshot_doc)
        self.states.learn(current, stored_seq=snapshot.seq)
        return current

    async def entry(self, key: str) -> Doc | None:
        return await self.store[LEDGER].find_one({"_id": key})

    async def is_member(self, msisdn: str) -> bool:
        """An open membership (a closed one is a previous owner's: it takes no points)."""
        wallet = self.states.get(msisdn) or await self.wallet(msisdn)
        return wallet is not None and not wallet.closed

    # -- changing one by one (requests, jobs) --------------------------------------------------

    async def append(self, msisdn: str, key: str, decide: Decide, *, relay: bool = True) -> tuple[Doc, bool]:
        """Apply one change; (its entry, True) or, when `key` was applied before, (that entry,
        False). Raises NotMember, domain.wallet.Refused or Contended. The wallet snapshot is
        written at once (one request, one write: simpler than owing it)."""
        async with self.lock(msisdn):  # the snapshot too: one writer of it in this process
            doc, fresh = await self._append_locked(msisdn, key, decide, relay=relay)
            if fresh:
                await self._write_snapshots([from_document(msisdn, doc["state_after"])])
        if fresh and relay:
            await self.relay.relay(doc)
        return doc, fresh

    async def _append_locked(self, msisdn: str, key: str, decide: Decide, *, relay: bool) -> tuple[Doc, bool]:
        # No read of `key` first: a replay is found by its failed insert (or, when the rules
        # now refuse it, before answering the refusal), so a new change costs no extra read.
        wallet = self.states.get(msisdn) or await self.wallet(msisdn)
        for _ in range(ATTEMPTS):
            if wallet is None:
                raise NotMember(msisdn)
            try:
                decision = decide(wallet)
            except Refused:
                existing = await self.entry(key)
                if existing is not None:  # a retry of a change made before
                    return existing, False
                # Refuse only on the latest state: the one known here may be behind the ledger.
                ahead = await self.wallet(msisdn)
                if ahead is None or ahead.seq <= wallet.seq:
                    raise
                wallet = ahead
                continue
            doc = self._entry_document(key, wallet, decision, relay=relay)
            try:
                await self.store[LEDGER].insert_one(doc)
            except DuplicateKeyError:
                existing = await self.entry(key)
                if existing is not None:  # the same change, applied meanwhile (another replica)
                    return existing, False
                wallet = await self.wallet(msisdn)  # another change took seq + 1
                continue
            self.states.learn(decision.change.state)
            POINTS.labels(decision.kind).inc(abs(decision.change.delta))
            return doc, True
        raise Contended(f"{msisdn}: {ATTEMPTS} changes came first")

    # -- changing in batches (the consumer) ----------------------------------------------------

    async def append_batch(self, changes: Mapping[str, Sequence[tuple[str, MaybeDecide]]]) -> list[Doc]:
        """Consumer path: the changes of many members (each member's in order) decided on their
        last known states and inserted in ONE ordered insert, no wallet write; their entries
        (fresh or replayed). A member whose entry fails (a replay, or a state another process
        moved on) is left out of a retried insert of the rest, then settled on its own. Entries
        are written without a pending outbox: the consumer publishes their events before its
        batch is committed, and a redelivery finds them and publishes them again. Members
        that are not enrolled are skipped; a decide that returns None changes nothing. Then
        the snapshots that are due, within the budget."""
        members = sorted(changes)  # locks always taken in one order: no deadlock between batches
        async with AsyncExitStack() as held:
            for msisdn in members:
                await held.enter_async_context(self.lock(msisdn))
            states = await self._known_states(members)
            docs: list[Doc] = []
            for msisdn, wallet in states.items():
                for key, decide in changes[msisdn]:
                    decision = decide(wallet)
                    if decision is not None:
                        docs.append(self._entry_document(key, wallet, decision, relay=False))
                        wallet = decision.change.state
            inserted, careful = await self._insert_skipping(docs)
            for doc in inserted:
                self.states.learn(from_document(doc["member"], doc["state_after"]))
                POINTS.labels(doc["kind"]).inc(abs(doc["delta"]))
            applied = [d for d in inserted if d["member"] not in careful]
            for msisdn in sorted(careful):
                mine = [d for d in inserted if d["member"] == msisdn]
                applied += await self._one_by_one(msisdn, changes[msisdn], inserted=mine)
        await self.write_due_snapshots()
        return applied

    async def _known_states(self, members: Sequence[str]) -> dict[str, Wallet]:
        """The members' last known states (in memory, else read); members that are not absent."""
        unknown = [m for m in members if self.states.get(m) is None]
        stored = await self.store.find_by_ids(WALLETS, unknown)
        read = await self.store.bounded_all(self._current(m, doc) for m, doc in stored.items())
        loaded = {w.msisdn: w for w in read}
        states = {m: self.states.get(m) or loaded.get(m) for m in members}
        return {m: w for m, w in states.items() if w is not None}

    async def _insert_skipping(self, docs: list[Doc]) -> tuple[list[Doc], set[str]]:
        """Insert in order; at a failed entry, its member's later entries are dropped and the
        rest inserted again (one call per failure, plus one). (What was inserted, the members
        whose entry failed.) Entries are grouped by member, so each member's inserted ones are
        an unbroken run from the state it was decided on."""
        inserted: list[Doc] = []
        careful: set[str] = set()
        pending = docs
        while pending:
            count = await self.store.insert_run(LEDGER, pending)
            inserted += pending[:count]
            if count == len(pending):
                break
            failed = pending[count]["member"]
            careful.add(failed)
            pending = [d for d in pending[count + 1 :] if d["member"] != failed]
        return inserted, careful

    async def _one_by_one(
        self, msisdn: str, changes: Sequence[tuple[str, MaybeDecide]], *, inserted: list[Doc]
    ) -> list[Doc]:
        """A replay or a change from elsewhere met the batch: settle each change on its own
        (the member's lock is held). `inserted`: the member's entries the batch did insert."""
        applied = list(inserted)
        done = {d["_id"] for d in applied}
        for key, decide in changes:
            if key in done:
                continue

            def must(w: Wallet, decide: MaybeDecide = decide) -> Decision:
                decision = decide(w)
                if decision is None:
                    raise _Nothing
                return decision

            try:
                doc, _ = await self._append_locked(msisdn, key, must, relay=False)
            except _Nothing:
                continue
            done.add(key)
            applied.append(doc)
        return applied

    def _entry_document(self, key: str, before: Wallet, decision: Decision, *, relay: bool) -> Doc:
        after = decision.change.state
        now = now_ms()
        events = outbox_entries(self.topic, decision.events)
        doc: Doc = {
            "_id": key,
            "member": before.msisdn,
            "seq": after.seq,
            "kind": decision.kind,
            "delta": decision.change.delta,
            "buckets": decision.change.buckets,
            "balance_after": after.points,
            "state_after": to_document(after),
            "detail": decision.detail,
            "at": now,
            "events": events,
            "rev": 1,
        }
        if relay:
            doc = with_pending(doc, events, now)
        if decision.counterpart is not None:
            doc |= {"counterpart": decision.counterpart, "counterpart_pending": True}
        return doc

    # -- snapshots -----------------------------------------------------------------------------

    async def write_due_snapshots(self) -> int:
        """Write the snapshots the policy says are due (most behind first, within budget)."""
        due = self.states.due()
        await self._write_snapshots(due)
        return len(due)

    async def run_snapshot_writer(self) -> None:
        """Between batches (a quiet consumer), members' snapshots still catch up."""
        while True:
            await asyncio.sleep(max(1.0, self.states.policy.seconds / 2))
            try:
                await self.write_due_snapshots()
            except Exception:  # the next round tries again; the ledger is the truth meanwhile
                log.exception("writing wallet snapshots failed")

    async def _write_snapshots(self, states: Sequence[Wallet]) -> None:
        """`$set` only over an older snapshot (a lost race leaves it older: still true)."""
        at = datetime.now(UTC)

        async def write(state: Wallet) -> None:
            await self.store[WALLETS].update_one(
                {"_id": state.msisdn, "seq": {"$lt": state.seq}},
                {"$set": {**to_document(state), "updated_at": at}},
            )
            self.states.stored(state)

        await self.store.bounded_all(write(s) for s in states)
        SNAPSHOTS.inc(len(states))

    async def publish_entries(self, docs: Sequence[Doc]) -> None:
        await self.publisher.publish_serialized([e for doc in docs for e in doc.get("events", ())])


class _Nothing(Exception):
    """A change that turned out to change nothing (e.g. no points left under the month's cap)."""
