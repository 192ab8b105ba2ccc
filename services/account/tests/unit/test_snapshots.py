"""When balance snapshots are written: far enough behind, or behind and old, within a budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from account_service.domain.snapshots import Lag, SnapshotPolicy

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = SnapshotPolicy(every=50, seconds=30, budget=3)


def lag(number: str, behind: int, age_seconds: float = 0) -> Lag:
    return Lag(number, behind, NOW - timedelta(seconds=age_seconds))


def test_a_snapshot_is_due_once_it_is_every_decisions_behind() -> None:
    assert not POLICY.is_due(lag("a", 49), NOW)
    assert POLICY.is_due(lag("a", 50), NOW)


def test_a_snapshot_behind_is_due_once_it_is_older_than_seconds() -> None:
    assert not POLICY.is_due(lag("a", 1, age_seconds=29), NOW)
    assert POLICY.is_due(lag("a", 1, age_seconds=30), NOW)


def test_a_snapshot_that_is_not_behind_is_never_due_however_old() -> None:
    assert not POLICY.is_due(lag("a", 0, age_seconds=3600), NOW)


def test_at_most_the_budget_is_written_per_batch_the_most_behind_first() -> None:
    lags = [lag("a", 60), lag("b", 5, 40), lag("c", 200), lag("d", 1, 31), lag("e", 3), lag("f", 51)]
    assert POLICY.due(lags, NOW) == ["c", "a", "f"]


def test_the_rest_wait_for_a_later_batch() -> None:
    lags = {n: lag(n, 50 + i) for i, n in enumerate("abcdefg")}
    written: list[str] = []
    while pending := [v for k, v in lags.items() if k not in written]:
        batch = POLICY.due(pending, NOW)
        assert 0 < len(batch) <= POLICY.budget
        written += batch
    assert sorted(written) == sorted(lags)
