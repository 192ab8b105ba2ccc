"""Points ledger: every change of a member's points once, in order, never below zero.

FerretDB 1.24 rewrites a whole document per update without a lock, so a conditional update
is no guard there (measured: 50 concurrent `{points: {$gte: 100}}`/`$inc: -100` on a
1,000-point document let 41 through and left 400; 50 `find_one_and_update` on 10 free codes
handed out 50). So, as the account service's journal, a change is decided by a unique insert:

1. read the member's wallet (the state after entry `seq`) and decide the change on it;
2. insert the ledger entry: `_id` = the change's business key (`earn:topup:<id>`,
   `transfer:<id>:out`, `redeem:<id>`, ...) and (member, seq+1) unique. A key that exists is
   a replay (the stored entry is the answer); a seq that exists means another change came
   first: read again, roll forward, decide again;
3. write the wallet with the entry's state (`$set` only if it is behind). A crash between 2
   and 3 leaves the wallet behind the ledger; every reader rolls it forward entry by entry.

The events a change implies are in its entry (`events`, and `outbox` until relayed), so a
change and its announcement are never separated. Changes of one member in this process also
queue on a lock (contention costs a wait, not a failed insert); across replicas the unique
(member, seq) decides.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.topics import LOYALTY_EVENTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending

from .domain.wallet import Change, Refused, Wallet, from_document, now_ms, to_document
from .metrics import POINTS
from .store import LEDGER, WALLETS

log = logging.getLogger(__name__)
ATTEMPTS = 30  # of deciding a change when others keep coming first
STATE_MEMORY = 50_000  # members whose last state the process keeps


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


class PointsLedger:
    def __init__(
        self, store: Store, publisher: EventPublisher, service: str, topic: Topic = LOYALTY_EVENTS
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.topic = topic
        self.relay = OutboxRelay(store, publisher, service, LEDGER)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._states: OrderedDict[str, Wallet] = OrderedDict()  # last written, saves a read

    def lock(self, msisdn: str) -> asyncio.Lock:
        found = self._locks.get(msisdn)
        if found is None:
            found = asyncio.Lock()
            self._locks[msisdn] = found
        return found

    # -- reading -----------------------------------------------------------------------------

    async def wallet_document(self, msisdn: str) -> Doc | None:
        return await self.store[WALLETS].find_one({"_id": msisdn})

    async def wallet(self, msisdn: str, *, roll_forward: bool = True) -> Wallet | None:
        """The member's current state (None: not a member)."""
        doc = await self.wallet_document(msisdn)
        if doc is None:
            return None
        wallet = from_document(msisdn, doc)
        return await self.roll_forward(wallet) if roll_forward else wallet

    async def roll_forward(self, wallet: Wallet) -> Wallet:
        """Apply to the wallet the entries a crash (or another replica) left beyond it."""
        start = wallet
        while True:
            entry = await self.store[LEDGER].find_one({"member": wallet.msisdn, "seq": wallet.seq + 1})
            if entry is None:
                break
            wallet = from_document(wallet.msisdn, entry["state_after"])
        if wallet is not start:
            log.info("wallet rolled forward", extra={"member": wallet.msisdn, "seq": wallet.seq})
            await self._write_wallet(wallet)
        return wallet

    async def entry(self, key: str) -> Doc | None:
        return await self.store[LEDGER].find_one({"_id": key})

    async def is_member(self, msisdn: str) -> bool:
        """An open membership (a closed one is a previous owner's: it takes no points)."""
        known = self._states.get(msisdn)
        if known is not None:
            return not known.closed
        doc = await self.wallet_document(msisdn)
        return doc is not None and not doc.get("closed", False)

    # -- changing ----------------------------------------------------------------------------

    async def append(self, msisdn: str, key: str, decide: Decide, *, relay: bool = True) -> tuple[Doc, bool]:
        """Apply one change; (its entry, True) or, when `key` was applied before, (that entry,
        False). Raises NotMember, domain.wallet.Refused or Contended."""
        async with self.lock(msisdn):
            doc, fresh = await self._append_locked(msisdn, key, decide, relay=relay)
        if fresh and relay:
            await self.relay.relay(doc)
        return doc, fresh

    async def _append_locked(self, msisdn: str, key: str, decide: Decide, *, relay: bool) -> tuple[Doc, bool]:
        # No read of `key` first: a replay is found by its failed insert (or, when the rules
        # now refuse it, before answering the refusal), so a new change costs no extra read.
        wallet = await self._latest_known(msisdn)
        if wallet is None:
            raise NotMember(msisdn)
        for _ in range(ATTEMPTS):
            try:
                decision = decide(wallet)
            except Refused:
                existing = await self.entry(key)
                if existing is not None:  # a retry of a change made before
                    return existing, False
                # Refuse only on the latest state: the wallet may be behind the ledger.
                ahead = await self.roll_forward(wallet)
                if ahead.seq == wallet.seq:
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
                wallet = await self.roll_forward(wallet)  # another change took seq + 1
                continue
            await self._write_wallet(decision.change.state)
            POINTS.labels(decision.kind).inc(abs(decision.change.delta))
            return doc, True
        raise Contended(f"{msisdn}: {ATTEMPTS} changes came first")

    async def append_batch(self, changes: Mapping[str, Sequence[tuple[str, MaybeDecide]]]) -> list[Doc]:
        """Consumer path: the changes of many members (each member's in order) in ONE ordered
        insert, then one wallet write per member; their entries (fresh or replayed). Entries
        are written without a pending outbox: the consumer publishes their events before its
        batch is committed, and a redelivery finds them and publishes them again. Members
        that are not enrolled are skipped; a decide that returns None changes nothing."""
        members = sorted(changes)  # locks always taken in one order: no deadlock between batches
        async with AsyncExitStack() as held:
            for msisdn in members:
                await held.enter_async_context(self.lock(msisdn))
            unknown = [m for m in members if m not in self._states]
            stored = await self.store.find_by_ids(WALLETS, unknown)
            docs: list[Doc] = []
            states: dict[str, Wallet] = {}
            for msisdn in members:
                wallet = self._states.get(msisdn) or (
                    from_document(msisdn, stored[msisdn]) if msisdn in stored else None
                )
                if wallet is None:
                    continue
                for key, decide in changes[msisdn]:
                    decision = decide(wallet)
                    if decision is not None:
                        docs.append(self._entry_document(key, wallet, decision, relay=False))
                        wallet = decision.change.state
                        states[msisdn] = wallet
            if not docs:
                return []
            # Ordered: what is inserted is, for every member, an unbroken run from its seq.
            inserted = await self.store.insert_run(LEDGER, docs)
            careful = {d["member"] for d in docs[inserted:]}
            done = docs[:inserted]
            settled = {m: w for m, w in states.items() if m not in careful}
            await self.store.bounded_all(self._write_wallet(w) for w in settled.values())
            for doc in done:
                POINTS.labels(doc["kind"]).inc(abs(doc["delta"]))
            applied = [d for d in done if d["member"] not in careful]
            for msisdn in sorted(careful):
                mine = [d for d in done if d["member"] == msisdn]
                applied += await self._one_by_one(msisdn, changes[msisdn], inserted=mine)
            return applied

    async def _one_by_one(
        self, msisdn: str, changes: Sequence[tuple[str, MaybeDecide]], *, inserted: list[Doc]
    ) -> list[Doc]:
        """A replay or a change from elsewhere met the batch: settle each change on its own
        (the member's lock is held). `inserted`: the member's entries the batch did insert."""
        applied = list(inserted)
        done = {d["_id"] for d in applied}
        if applied:
            await self._write_wallet(from_document(msisdn, applied[-1]["state_after"]))
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

    async def _latest_known(self, msisdn: str) -> Wallet | None:
        """The state this process last wrote, else the stored wallet. Either may be behind
        (another replica, a crash): the (member, seq) insert then fails and we roll forward."""
        known = self._states.get(msisdn)
        return known if known is not None else await self.wallet(msisdn, roll_forward=False)

    async def _write_wallet(self, state: Wallet) -> None:
        self._states[state.msisdn] = state
        self._states.move_to_end(state.msisdn)
        while len(self._states) > STATE_MEMORY:
            self._states.popitem(last=False)
        await self.store[WALLETS].update_one(
            {"_id": state.msisdn, "seq": {"$lt": state.seq}},
            {"$set": {**to_document(state), "updated_at": datetime.now(UTC)}},
        )

    async def publish_entries(self, docs: Sequence[Doc]) -> None:
        await self.publisher.publish_serialized([e for doc in docs for e in doc.get("events", ())])


class _Nothing(Exception):
    """A change that turned out to change nothing (e.g. no points left under the month's cap)."""
