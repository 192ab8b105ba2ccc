"""Co-partitioning: partition p of every topic a group reads goes to the same member.

Every per-subscriber topic is keyed by the MSISDN and has the same number of partitions
(contracts test it), so one subscriber's events sit in the same partition number of every
topic. A member that owns partition p of all of them is the only writer of that subscriber's
documents (FerretDB loses concurrent writes of one document). Kafka's default assignors do
not promise that: round-robin hands t0p0 and t1p0 to different members, and range does so
only while every member subscribes to the same topics. This one assigns partition numbers,
not partitions: number p goes to the p-th member in order (wrapping), with all its topics;
a member that does not read a topic (a rolling upgrade that adds one) passes that topic's
partition p to the next member that does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

log = logging.getLogger(__name__)


def assign_by_partition_number(
    subscriptions: Mapping[str, Iterable[str]], partitions: Mapping[str, int]
) -> dict[str, dict[str, list[int]]]:
    """{member: {topic: [partition, ...]}}: partition number p of every topic to one member."""
    members = sorted(subscriptions)
    reads = {m: set(subscriptions[m]) for m in members}
    topics = sorted({t for m in members for t in reads[m]})
    if len({partitions.get(t, 0) for t in topics}) > 1:
        log.error(
            "topics of one group differ in partition count: one subscriber's events may reach two members",
            extra={"partitions": {t: partitions.get(t, 0) for t in topics}},
        )
    assignment: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for number in range(max((partitions.get(t, 0) for t in topics), default=0)):
        for topic in topics:
            if number >= partitions.get(topic, 0):
                continue
            for step in range(len(members)):
                member = members[(number + step) % len(members)]
                if topic in reads[member]:
                    assignment[member][topic].append(number)
                    break
    return {m: {t: sorted(ps) for t, ps in assignment[m].items()} for m in members}


class CoPartitionAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped here
    name = "copartition"
    version = 0

    @classmethod
    def assign(
        cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {member: list(meta.subscription) for member, meta in members.items()}
        topics = {t for subscribed in subscriptions.values() for t in subscribed}
        counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
        plan = assign_by_partition_number(subscriptions, counts)
        return {
            member: ConsumerProtocolMemberAssignment(cls.version, sorted(plan[member].items()), b"")
            for member in members
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        return None
