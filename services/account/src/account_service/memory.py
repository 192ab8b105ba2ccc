"""The subscribers' last decided states a process remembers between ledger batches.

A ledger decides a subscriber's next event on the state it remembers (no store read); a state
it does not remember is resumed from the read cache or the snapshot. The process's ledger lanes
(the top-up lane and the usage lane) share one memory, so a decision of one lane is the state the
other decides on next: without it, each top-up made the usage lane's copy of that subscriber
stale, and each usage record the top-up lane's, and every such batch met the journal's unique
(msisdn, seq) and was settled carefully, one store round trip per event.

The lanes also take turns from reading a state to journaling the decisions on it
(`journal_turn`): one writer per subscriber within the process, so two lanes deciding at the
same time on the same subscribers (a subscriber topping up while calling) do not take each
other's seqs. The turn covers the decisions and their journal insert, not the projections,
snapshots, cache and events that follow.

The memory is a hint, never the truth: a state another writer extended (a lane of another
process, a member overlapping a rebalance) is refused by the journal and decided again on it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from .balance_state import Account

STATE_MEMORY = 50_000  # subscribers whose last state is kept between batches


class LedgerMemory:
    def __init__(self, capacity: int = STATE_MEMORY) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, Account] = OrderedDict()
        self._lagging: set[str] = set()  # remembered subscribers whose snapshot is behind
        # One lane at a time reads states and journals decisions on them (LedgerService.apply):
        # with this, the lanes of a process never decide on the same subscriber at once.
        self.journal_turn = asyncio.Lock()
        # One lane at a time writes snapshots: two writing one document at once lose a write
        # on the local store.
        self.snapshot_turn = asyncio.Lock()

    def get(self, number: str) -> Account | None:
        return self._states.get(number)

    def lagging(self) -> Iterator[Account]:
        return (self._states[n] for n in self._lagging)

    def remember(self, account: Account) -> None:
        """Keep `account` unless a newer state of it is remembered (the other lane decided on
        it meanwhile): a lane finishing its batch must not take the state back."""
        number = account.state.msisdn
        known = self._states.get(number)
        if known is not None and known.state.seq > account.state.seq:
            return
        self._states[number] = account
        self._states.move_to_end(number)
        if account.behind > 0:
            self._lagging.add(number)
        else:
            self._lagging.discard(number)
        while len(self._states) > self.capacity:
            forgotten, _ = self._states.popitem(last=False)
            self._lagging.discard(forgotten)  # its journal keeps it; a snapshot waits for its return

    def forget(self, numbers: Iterable[str]) -> None:
        for number in numbers:
            self._states.pop(number, None)
            self._lagging.discard(number)
