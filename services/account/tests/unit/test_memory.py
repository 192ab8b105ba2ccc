"""The ledger lanes' shared memory of decided states (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

from account_service.balance_state import opening
from account_service.memory import LedgerMemory


def test_a_lane_finishing_its_batch_never_takes_back_a_state_the_other_lane_decided_since() -> None:
    memory = LedgerMemory()
    start = opening("84901110001", "prepaid")
    now = datetime.now(UTC)
    older = start.decided(start.state.next_decision(), now)
    newer = older.decided(older.state.next_decision(), now)
    memory.remember(newer)
    memory.remember(older)
    remembered = memory.get("84901110001")
    assert remembered is not None and remembered.state.seq == newer.state.seq == 2


def test_the_memory_forgets_the_least_recently_decided_beyond_its_capacity() -> None:
    memory = LedgerMemory(capacity=2)
    for number in ("84901110001", "84901110002", "84901110003"):
        memory.remember(opening(number, "prepaid"))
    assert memory.get("84901110001") is None
    assert memory.get("84901110003") is not None
