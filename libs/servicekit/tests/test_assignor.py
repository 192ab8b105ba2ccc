"""Co-partitioning: partition number p of every topic a group reads goes to one member."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from servicekit.kafka.assignor import assign_by_partition_number

TOPICS = ["payment.events.v1", "network.usage.v1", "vas.events.v1", "loyalty.events.v1"]


def owners(plan: dict[str, dict[str, list[int]]]) -> dict[tuple[str, int], list[str]]:
    found: dict[tuple[str, int], list[str]] = {}
    for member, topics in plan.items():
        for topic, partitions in topics.items():
            for p in partitions:
                found.setdefault((topic, p), []).append(member)
    return found


@given(members=st.integers(min_value=1, max_value=8), partitions=st.integers(min_value=1, max_value=12))
def test_every_partition_has_one_owner_and_a_number_is_one_members_in_every_topic(
    members: int, partitions: int
) -> None:
    subscriptions = {f"m{i}": TOPICS for i in range(members)}
    plan = assign_by_partition_number(subscriptions, dict.fromkeys(TOPICS, partitions))
    owned = owners(plan)
    assert set(owned) == {(t, p) for t in TOPICS for p in range(partitions)}
    assert all(len(m) == 1 for m in owned.values())
    for p in range(partitions):
        assert len({owned[(t, p)][0] for t in TOPICS}) == 1, f"partition {p} split across members"


def test_members_share_the_numbers_evenly() -> None:
    plan = assign_by_partition_number({f"m{i}": TOPICS for i in range(3)}, dict.fromkeys(TOPICS, 6))
    assert sorted(len(t["payment.events.v1"]) for t in plan.values()) == [2, 2, 2]


def test_round_robin_would_split_a_subscriber_across_members_and_this_does_not() -> None:
    """Six members of the account group over 4 topics of 3 partitions: Kafka's round-robin
    gave partition 0 of two topics to two members (two writers of one balance)."""
    plan = assign_by_partition_number({f"m{i}": TOPICS for i in range(6)}, dict.fromkeys(TOPICS, 3))
    owned = owners(plan)
    for p in range(3):
        assert len({owned[(t, p)][0] for t in TOPICS}) == 1
    assert sum(1 for topics in plan.values() if topics) == 3  # the others stand by


def test_a_member_that_does_not_read_a_topic_passes_its_partitions_on() -> None:
    subscriptions = {"a": TOPICS, "b": TOPICS[:2]}
    plan = assign_by_partition_number(subscriptions, dict.fromkeys(TOPICS, 3))
    owned = owners(plan)
    assert {(t, p) for t in TOPICS for p in range(3)} == set(owned)
    assert all(owned[(t, p)] == ["a"] for t in TOPICS[2:] for p in range(3))
