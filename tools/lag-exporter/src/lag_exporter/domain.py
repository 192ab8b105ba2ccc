"""Lag and commit ages from readings of the broker: plain logic, no I/O.

A reading is what one poll of the broker returned: every group's committed offset per
partition, every partition's end offset (the offset the next record will get) and each
group's member count. Lag is end - committed: the records the group has not consumed yet.

The broker does not say when an offset was committed (OffsetFetch carries no timestamp), so
the exporter keeps the time it first saw each committed offset: a partition's commit age is
the time since its committed offset last moved, as far as this process has seen. After a
restart every age starts again from 0: a group wedged before the restart is seen as such one
alert window later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Reading:
    at: float  # when it was taken (time.time())
    committed: Mapping[str, Mapping[Partition, int]]  # group -> partition -> committed offset
    end: Mapping[Partition, int]  # partition -> end offset
    members: Mapping[str, int]  # group -> members now


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    commit_age: float

    @property
    def lag(self) -> int:
        # A committed offset ahead of the end offset (records deleted, a topic recreated) is
        # not negative lag: the consumer waits for nothing.
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class Snapshot:
    at: float
    partitions: list[PartitionLag]
    end: Mapping[Partition, int]
    members: Mapping[str, int]

    def group_commit_age(self) -> dict[str, float]:
        """Per group: the time since any of its committed offsets last moved."""
        ages: dict[str, float] = {}
        for row in self.partitions:
            ages[row.group] = min(ages.get(row.group, row.commit_age), row.commit_age)
        return ages

    def group_lag(self) -> dict[str, int]:
        totals: dict[str, int] = {group: 0 for group in self.members}
        for row in self.partitions:
            totals[row.group] = totals.get(row.group, 0) + row.lag
        return totals


@dataclass
class CommitClock:
    """When each (group, topic, partition)'s committed offset last changed, as seen here."""

    _seen: dict[tuple[str, str, int], tuple[int, float]] = field(default_factory=dict)

    def snapshot(self, reading: Reading) -> Snapshot:
        rows = []
        current: dict[tuple[str, str, int], tuple[int, float]] = {}
        for group, offsets in reading.committed.items():
            for (topic, partition), offset in offsets.items():
                end = reading.end.get((topic, partition))
                if end is None:  # a topic left out, or gone since the commit
                    continue
                key = (group, topic, partition)
                previous = self._seen.get(key)
                moved_at = reading.at if previous is None or previous[0] != offset else previous[1]
                current[key] = (offset, moved_at)
                rows.append(
                    PartitionLag(group, topic, partition, offset, end, max(0.0, reading.at - moved_at))
                )
        # Groups or partitions no longer reported are forgotten: no series for them any more.
        self._seen = current
        rows.sort(key=lambda r: (r.group, r.topic, r.partition))
        return Snapshot(reading.at, rows, dict(reading.end), dict(reading.members))
