"""A subscriber's current balances, read from the store: the journal is the truth.

Every ledger decision is a journal document holding the state after it (`state_after`) under a
unique (msisdn, seq); the `balances` document is a snapshot of that state at some seq, written
lazily by the ledger (domain.snapshots), so it may lag. The current state is the snapshot rolled
forward to the newest decision beyond it: one indexed find by msisdn and seq. Everything that
needs the truth (the read side on a cache miss, the ledger's careful path, tests) reads it here;
nothing else reads `balances` as if it were the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from servicekit.mongo import Doc, Store

from .domain.balances import Balances, from_document, to_document
from .store import BALANCES, JOURNAL, SUBSCRIBERS


@dataclass(frozen=True)
class Account:
    """A subscriber's balances (`state`, decided up to `state.seq`) and the snapshot behind them."""

    state: Balances
    rev: int | None = None  # the snapshot document's version; None: no snapshot yet
    snapshot_seq: int = 0  # the seq the snapshot holds (state.seq - snapshot_seq: how far behind)
    # When the state first moved past its snapshot (the first decision the snapshot lacks, as far
    # as this process knows); None while the snapshot holds the state.
    lagging_since: datetime | None = None
    as_of: datetime | None = None  # when the state was decided (what the app shows as "as of")

    @property
    def behind(self) -> int:
        return self.state.seq - self.snapshot_seq

    def decided(self, state: Balances, at: datetime) -> Account:
        return replace(self, state=state, as_of=at, lagging_since=self.lagging_since or at)

    def snapshotted(self) -> Account:
        return replace(self, rev=(self.rev or 0) + 1, snapshot_seq=self.state.seq, lagging_since=None)


def from_snapshot(doc: Doc) -> Account:
    state = from_document(doc)
    at = doc.get("updated_at")
    return Account(state, rev=int(doc["rev"]), snapshot_seq=state.seq, as_of=at)


def opening(number: str, plan: str = "prepaid") -> Account:
    """A subscriber with no decision and no snapshot yet."""
    return Account(Balances(msisdn=number, plan="postpaid" if plan == "postpaid" else "prepaid"))


async def newest_decision(store: Store, number: str, beyond_seq: int = 0) -> Doc | None:
    """The subscriber's last journal decision if it is beyond `beyond_seq` (unique index
    (msisdn, seq))."""
    found = (
        await store[JOURNAL]
        .find({"msisdn": number, "seq": {"$gt": beyond_seq}}, {"seq": 1, "at": 1, "state_after": 1})
        .sort("seq", -1)
        .limit(1)
        .to_list()
    )
    return found[0] if found else None


async def rolled_forward(store: Store, number: str, snapshot: Doc | None) -> Account | None:
    """The snapshot (or nothing) rolled forward to the newest journal decision beyond it; None
    when the subscriber has neither."""
    account = from_snapshot(snapshot) if snapshot is not None else None
    head = await newest_decision(store, number, account.snapshot_seq if account else 0)
    if head is None:
        return account
    state = from_document({"_id": number, **head["state_after"]})
    return (account or Account(state)).decided(state, head["at"])


async def current_account(store: Store, number: str) -> Account | None:
    """The subscriber's balances as the journal has decided them; None: never decided on."""
    return await rolled_forward(store, number, await store[BALANCES].find_one({"_id": number}))


async def current_balances(store: Store, number: str) -> Balances:
    """The current state, or an opening one on the subscriber's plan (for tests and tools)."""
    account = await current_account(store, number)
    if account is not None:
        return account.state
    registered = await store[SUBSCRIBERS].find_one({"_id": number}) or {}
    return opening(number, registered.get("plan", "prepaid")).state


async def snapshots_of(store: Store, numbers: list[str]) -> dict[str, Account]:
    """The snapshots of `numbers` (possibly behind their journal); an opening state on the
    subscriber's plan for those without one."""
    if not numbers:
        return {}
    docs = await store.find_by_ids(BALANCES, numbers)
    missing = [n for n in numbers if n not in docs]
    plans = await store.find_by_ids(SUBSCRIBERS, missing) if missing else {}
    return {
        n: from_snapshot(docs[n]) if n in docs else opening(n, plans.get(n, {}).get("plan", "prepaid"))
        for n in numbers
    }


def rendered(account: Account, as_of: datetime | None = None) -> dict[str, Any]:
    """The balances as the read side renders them (see AccountQueries.balances)."""
    at = as_of or account.as_of or datetime.now(UTC)
    return {"_id": account.state.msisdn, **to_document(account.state), "updated_at": at}


def cached_balances(account: Account, as_of: datetime | None = None, *, resumable: bool = True) -> bytes:
    """`rendered`, as the read cache keeps it (versioned by the state's seq), with the snapshot
    it stands on when `resumable` (the ledger resumes from the entry: `from_cached`; readers
    ignore it)."""
    doc = rendered(account, as_of)
    if resumable:
        doc["snapshot"] = {"rev": account.rev, "seq": account.snapshot_seq}
    return orjson.dumps(doc)


def cache_entry(account: Account, *, resumable: bool = True) -> tuple[str, int, bytes]:
    """A read-cache entry: versioned by seq, so an older put never hides a newer state."""
    return account.state.msisdn, account.state.seq, cached_balances(account, resumable=resumable)


def parse_cached(payload: bytes) -> dict[str, Any]:
    """A read-cache entry as the balances document it renders (dates parsed)."""
    doc: dict[str, Any] = orjson.loads(payload)
    for item in (*doc.get("promos", ()), *doc.get("data", ()), *doc.get("allowances", ())):
        item["expires_at"] = datetime.fromisoformat(item["expires_at"])
    doc["updated_at"] = datetime.fromisoformat(doc["updated_at"])
    return doc


def from_cached(payload: bytes) -> Account | None:
    """The state a read-cache entry holds, on the snapshot it names: where the ledger resumes a
    subscriber it does not remember without reading the store (an entry may lag the journal:
    the journal's unique (msisdn, seq) then refuses the first decision on it, and the
    subscriber is settled on the journal). None for an entry without its snapshot (older)."""
    doc = parse_cached(payload)
    snapshot = doc.get("snapshot")
    if not isinstance(snapshot, dict):
        return None
    state = from_document(doc)
    rev = snapshot.get("rev")
    account = Account(state, rev=None if rev is None else int(rev), snapshot_seq=int(snapshot["seq"]))
    at = doc["updated_at"]
    return replace(account, as_of=at, lagging_since=at if account.behind > 0 else None)
