"""Which wallet snapshots a process writes: due by lag or by age, most behind first, within the
budget; known states only move forward; a full memory forgets the least recently used."""

from __future__ import annotations

from dataclasses import replace

from loyalty_service.domain.snapshots import MemberStates, SnapshotPolicy
from loyalty_service.domain.wallet import Wallet


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def at(msisdn: str, seq: int) -> Wallet:
    return Wallet(msisdn=msisdn, seq=seq, points=seq * 10)


def states(
    every: int = 3, seconds: float = 30.0, budget: int = 2, capacity: int = 100
) -> tuple[MemberStates, Clock]:
    clock = Clock()
    return MemberStates(SnapshotPolicy(every, seconds, budget), capacity, clock), clock


def test_a_snapshot_is_due_once_it_is_every_entries_behind_and_not_before() -> None:
    known, _ = states(every=3)
    known.learn(at("a", 5), stored_seq=5)
    known.learn(at("a", 7))
    assert known.due() == []
    known.learn(at("a", 8))
    assert known.due() == [at("a", 8)]


def test_a_snapshot_behind_for_the_policy_s_seconds_is_due_however_little_behind() -> None:
    known, clock = states(every=50, seconds=30)
    known.learn(at("a", 1), stored_seq=0)
    clock.now += 29
    assert known.due() == []
    known.learn(at("a", 2))  # more entries do not restart the clock: behind since the first
    clock.now += 1
    assert known.due() == [at("a", 2)]


def test_due_snapshots_are_the_most_behind_first_within_the_budget() -> None:
    known, _ = states(every=1, budget=2)
    for msisdn, seq in (("a", 2), ("b", 9), ("c", 5), ("d", 1)):
        known.learn(at(msisdn, seq), stored_seq=0)
    assert [w.msisdn for w in known.due()] == ["b", "c"]


def test_a_written_snapshot_is_no_longer_due_and_the_rest_catch_up_batch_by_batch() -> None:
    known, _ = states(every=1, budget=2)
    for msisdn in "abcde":
        known.learn(at(msisdn, 3), stored_seq=0)
    written: list[str] = []
    for _ in range(3):
        due = known.due()
        for state in due:
            known.stored(state)
        written += [w.msisdn for w in due]
    assert sorted(written) == list("abcde")
    assert known.due() == [] and known.behind() == 0


def test_a_known_state_never_moves_back_to_an_older_one() -> None:
    known, _ = states()
    known.learn(at("a", 7), stored_seq=4)
    known.learn(at("a", 5), stored_seq=5)  # a reader that read before the last insert
    assert known.get("a") == at("a", 7)
    assert known.stored_seq("a") == 5


def test_a_state_whose_snapshot_is_unknown_counts_as_behind() -> None:
    known, _ = states(every=1)
    known.learn(at("a", 4))
    assert known.due() == [at("a", 4)]


def test_a_full_memory_forgets_the_least_recently_used_member() -> None:
    known, _ = states(capacity=2, every=1)
    known.learn(at("a", 1), stored_seq=0)
    known.learn(at("b", 1), stored_seq=0)
    known.learn(replace(at("a", 2)))  # a is used again: b is the oldest now
    known.learn(at("c", 1), stored_seq=1)
    assert (known.get("a"), known.get("b"), len(known)) == (at("a", 2), None, 2)
    assert [w.msisdn for w in known.due()] == ["a"]  # b's lag is forgotten with it
