"""What a process knows of members' points, and which wallet snapshots are worth writing.

The ledger is the truth: a member's state is the `state_after` of their last entry. A wallet
document is a snapshot of it, written lazily: a decision costs one insert, and a snapshot
only saves later readers the tail of entries beyond it. This module keeps, per member, the
last state the process inserted or read (an LRU) and how far the stored snapshot lags it,
and picks the snapshots to write: a member at least `every` entries behind, or behind for
`seconds`, at most `budget` of them at a time, the most behind first. Pure logic, no I/O.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .wallet import Wallet


@dataclass(frozen=True)
class SnapshotPolicy:
    every: int = 50  # entries behind that make a snapshot due at once
    seconds: float = 30.0  # how long a snapshot may stay behind at all
    budget: int = 50  # snapshots written at most per batch (or per idle pass)


@dataclass
class _Known:
    state: Wallet
    stored_seq: int  # the seq of the stored snapshot, as far as this process knows
    behind_since: float | None  # when the state first got ahead of the snapshot


class MemberStates:
    """The last known state of up to `capacity` members, and their snapshots' lag."""

    def __init__(
        self, policy: SnapshotPolicy, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self.capacity = capacity
        self.clock = clock
        self._known: OrderedDict[str, _Known] = OrderedDict()
        # Members whose snapshot lags, in the order they fell behind (the oldest first), and
        # those `every` or more entries behind: what `due` looks at, not every known member.
        self._behind: OrderedDict[str, None] = OrderedDict()
        self._far: set[str] = set()

    def __len__(self) -> int:
        return len(self._known)

    def get(self, msisdn: str) -> Wallet | None:
        known = self._known.get(msisdn)
        return known.state if known is not None else None

    def stored_seq(self, msisdn: str) -> int | None:
        known = self._known.get(msisdn)
        return known.stored_seq if known is not None else None

    def learn(self, state: Wallet, stored_seq: int | None = None) -> None:
        """A state read from the store or made by an inserted entry. Only ever moves forward:
        a reader that read before a writer inserted must not put the member back."""
        known = self._known.get(state.msisdn)
        if known is None:
            known = _Known(state, stored_seq or 0, None)  # a snapshot not known: say behind
            self._known[state.msisdn] = known
        elif state.seq >= known.state.seq:
            known.state = state
        if stored_seq is not None:
            known.stored_seq = max(known.stored_seq, stored_seq)
        self._known.move_to_end(state.msisdn)
        self._mark(state.msisdn, known)
        while len(self._known) > self.capacity:
            gone, _ = self._known.popitem(last=False)  # its snapshot may lag: the ledger has it
            self._behind.pop(gone, None)
            self._far.discard(gone)

    def stored(self, state: Wallet) -> None:
        """A snapshot of `state` was written."""
        known = self._known.get(state.msisdn)
        if known is not None:
            known.stored_seq = max(known.stored_seq, state.seq)
            self._mark(state.msisdn, known)

    def due(self) -> list[Wallet]:
        """The snapshots to write now: due by lag or age, most behind first, within budget.
        Looks at the members far behind and at most a few budgets of the longest behind (a
        prefix of `_behind`), so its cost does not grow with the members that lag a little."""
        now, policy = self.clock(), self.policy
        aged: list[str] = []
        for msisdn in self._behind:
            since = self._known[msisdn].behind_since
            if len(aged) >= 4 * policy.budget or since is None or now - since < policy.seconds:
                break
            aged.append(msisdn)
        candidates = [self._known[m] for m in self._far.union(aged)]
        chosen = heapq.nlargest(
            policy.budget, candidates, key=lambda k: (k.state.seq - k.stored_seq, k.state.msisdn)
        )
        return [k.state for k in chosen]

    def behind(self) -> int:
        """How many known members' snapshots lag their state."""
        return len(self._behind)

    def _mark(self, msisdn: str, known: _Known) -> None:
        lag = known.state.seq - known.stored_seq
        if lag > 0:
            if known.behind_since is None:
                known.behind_since = self.clock()
                self._behind[msisdn] = None  # at the end: the latest to fall behind
            if lag >= self.policy.every:
                self._far.add(msisdn)
            else:
                self._far.discard(msisdn)
        else:
            known.behind_since = None
            self._behind.pop(msisdn, None)
            self._far.discard(msisdn)
