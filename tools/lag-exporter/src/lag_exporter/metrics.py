"""The exporter's series, built at each scrape from the last reading of the broker.

Names follow the kafka_exporter convention (`kafka_consumergroup_*`, `kafka_topic_partition_*`)
with this platform's label names (`group`, `topic`, `partition`, as servicekit's
`consumer_lag`). A custom collector rather than gauges: a group or partition that disappears
has no series left behind, and a stale reading exports no offsets at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .domain import Snapshot

LAG = "kafka_consumergroup_lag"
COMMITTED = "kafka_consumergroup_committed_offset"
END = "kafka_topic_partition_end_offset"
MEMBERS = "kafka_consumergroup_members"
GROUP_COMMIT_AGE = "kafka_consumergroup_last_commit_age_seconds"
PARTITION_COMMIT_AGE = "kafka_consumergroup_partition_commit_age_seconds"
LAST_SUCCESS = "kafka_lag_exporter_last_success_timestamp_seconds"

PARTITION_LABELS = ["group", "topic", "partition"]


def poll_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "kafka_lag_exporter_polls_total", "Readings of the broker, by result", ["result"], registry=registry
    )


class SnapshotCollector(Collector):
    def __init__(self, latest: Callable[[], Snapshot | None], fresh: Callable[[], bool]) -> None:
        self._latest = latest
        self._fresh = fresh

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        last = GaugeMetricFamily(LAST_SUCCESS, "When the broker was last read successfully (Unix time)")
        if snapshot is not None:
            last.add_metric([], snapshot.at)
        yield last
        if snapshot is None or not self._fresh():
            return
        yield from partition_families(snapshot)
        yield from group_families(snapshot)
        end = GaugeMetricFamily(
            END, "Offset the next record of the partition will get", labels=["topic", "partition"]
        )
        for (topic, partition), offset in sorted(snapshot.end.items()):
            end.add_metric([topic, str(partition)], offset)
        yield end


def partition_families(snapshot: Snapshot) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        LAG, "Records of the partition the group has not committed yet", labels=PARTITION_LABELS
    )
    committed = GaugeMetricFamily(COMMITTED, "The group's committed offset", labels=PARTITION_LABELS)
    age = GaugeMetricFamily(
        PARTITION_COMMIT_AGE,
        "Seconds since the group's committed offset of the partition last moved (as seen by the exporter)",
        labels=PARTITION_LABELS,
    )
    for row in snapshot.partitions:
        labels = [row.group, row.topic, str(row.partition)]
        lag.add_metric(labels, row.lag)
        committed.add_metric(labels, row.committed)
        age.add_metric(labels, row.commit_age)
    yield from (lag, committed, age)


def group_families(snapshot: Snapshot) -> Iterator[Metric]:
    members = GaugeMetricFamily(MEMBERS, "Members of the consumer group now", labels=["group"])
    for group, count in sorted(snapshot.members.items()):
        members.add_metric([group], count)
    age = GaugeMetricFamily(
        GROUP_COMMIT_AGE,
        "Seconds since any committed offset of the group last moved (as seen by the exporter)",
        labels=["group"],
    )
    for group, seconds in sorted(snapshot.group_commit_age().items()):
        age.add_metric([group], seconds)
    yield from (members, age)
