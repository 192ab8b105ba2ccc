"""When a balance snapshot is written (no I/O here).

The journal is the truth of a subscriber's balances (each decision keeps the state after it);
the `balances` document is a snapshot of that truth at some seq, written lazily so that a
decision costs an append, not an update. A snapshot is due when it is `every` decisions
behind, or has been behind for `seconds` (so an idle subscriber's next decision writes
nothing at once); at most `budget` are written per batch, the most behind first, and the rest
wait for a later batch (a lagging snapshot costs a reader one more indexed find, never a
wrong answer).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Lag:
    """How far a subscriber's snapshot is behind its journal."""

    msisdn: str
    behind: int  # decisions journaled since the snapshot's seq
    since: datetime  # since when it has been behind (the first decision it lacks)


@dataclass(frozen=True)
class SnapshotPolicy:
    every: int = 50
    seconds: float = 30.0
    budget: int = 50

    def is_due(self, lag: Lag, now: datetime) -> bool:
        if lag.behind <= 0:
            return False
        return lag.behind >= self.every or now - lag.since >= timedelta(seconds=self.seconds)

    def due(self, lags: Iterable[Lag], now: datetime) -> list[str]:
        """The subscribers whose snapshot to write now: due ones, the most behind first, at
        most `budget`."""
        due = (lag for lag in lags if self.is_due(lag, now))
        return [lag.msisdn for lag in heapq.nlargest(self.budget, due, key=lambda lag: lag.behind)]
