"""Lag and commit ages from readings of the broker, and the series built from them."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

from lag_exporter.domain import CommitClock, Reading
from lag_exporter.metrics import SnapshotCollector
from lag_exporter.settings import LagExporterSettings


def reading(
    at: float, committed: dict[str, dict[tuple[str, int], int]], end: dict[tuple[str, int], int]
) -> Reading:
    return Reading(at=at, committed=committed, end=end, members={group: 1 for group in committed})


def test_lag_is_the_end_offset_minus_the_committed_one_never_negative() -> None:
    snapshot = CommitClock().snapshot(
        reading(100.0, {"g": {("t", 0): 7, ("t", 1): 12}}, {("t", 0): 10, ("t", 1): 5})
    )
    assert [(r.partition, r.lag) for r in snapshot.partitions] == [(0, 3), (1, 0)]
    assert snapshot.group_lag() == {"g": 3}


def test_commit_age_grows_while_the_offset_stands_still_and_resets_when_it_moves() -> None:
    clock = CommitClock()
    end = {("t", 0): 50, ("t", 1): 50}
    clock.snapshot(reading(100.0, {"g": {("t", 0): 10, ("t", 1): 20}}, end))
    later = clock.snapshot(reading(160.0, {"g": {("t", 0): 10, ("t", 1): 25}}, end))
    ages = {r.partition: r.commit_age for r in later.partitions}
    assert ages == {0: 60.0, 1: 0.0}
    # The group's age is its most recent movement on any partition.
    assert later.group_commit_age() == {"g": 0.0}
    stalled = clock.snapshot(reading(400.0, {"g": {("t", 0): 10, ("t", 1): 25}}, end))
    assert {r.partition: r.commit_age for r in stalled.partitions} == {0: 300.0, 1: 240.0}
    assert stalled.group_commit_age() == {"g": 240.0}


def test_a_reset_backwards_counts_as_a_move() -> None:
    clock = CommitClock()
    end = {("t", 0): 50}
    clock.snapshot(reading(100.0, {"g": {("t", 0): 40}}, end))
    replayed = clock.snapshot(reading(200.0, {"g": {("t", 0): 0}}, end))
    assert replayed.partitions[0].commit_age == 0.0
    assert replayed.partitions[0].lag == 50


def test_partitions_of_left_out_or_deleted_topics_are_not_reported_and_forgotten() -> None:
    clock = CommitClock()
    clock.snapshot(reading(100.0, {"g": {("t", 0): 1}, "h": {("u", 0): 1}}, {("t", 0): 1, ("u", 0): 1}))
    snapshot = clock.snapshot(reading(200.0, {"g": {("t", 0): 1, ("gone", 0): 3}}, {("t", 0): 1}))
    assert [(r.group, r.topic) for r in snapshot.partitions] == [("g", "t")]
    # Seen again later, a forgotten partition starts its age afresh.
    again = clock.snapshot(reading(300.0, {"h": {("u", 0): 1}}, {("u", 0): 1}))
    assert again.partitions[0].commit_age == 0.0


def scrape(collector: SnapshotCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_series_carry_group_topic_and_partition_labels() -> None:
    snapshot = CommitClock().snapshot(
        reading(100.0, {"account-service": {("payment.events.v1", 2): 7}}, {("payment.events.v1", 2): 9})
    )
    text = scrape(SnapshotCollector(lambda: snapshot, lambda: True))
    labels = 'group="account-service",partition="2",topic="payment.events.v1"'
    assert f"kafka_consumergroup_lag{{{labels}}} 2.0" in text
    assert f"kafka_consumergroup_committed_offset{{{labels}}} 7.0" in text
    assert f"kafka_consumergroup_partition_commit_age_seconds{{{labels}}} 0.0" in text
    assert 'kafka_topic_partition_end_offset{partition="2",topic="payment.events.v1"} 9.0' in text
    assert 'kafka_consumergroup_members{group="account-service"} 1.0' in text
    assert 'kafka_consumergroup_last_commit_age_seconds{group="account-service"} 0.0' in text
    assert "kafka_lag_exporter_last_success_timestamp_seconds 100.0" in text


def test_a_stale_reading_exports_no_offsets_only_when_it_was_taken() -> None:
    snapshot = CommitClock().snapshot(reading(100.0, {"g": {("t", 0): 1}}, {("t", 0): 5}))
    text = scrape(SnapshotCollector(lambda: snapshot, lambda: False))
    assert "kafka_lag_exporter_last_success_timestamp_seconds 100.0" in text
    assert "kafka_consumergroup_lag{" not in text
    assert "kafka_topic_partition_end_offset{" not in text


def test_it_reads_as_ops_and_leaves_the_harness_groups_and_topics_out_by_default() -> None:
    settings = LagExporterSettings()
    assert settings.kafka_username == "ops"
    for harness in ("test-redeliver-1a2b", "bench-consumer", "dlq.test.x"):
        assert re.search(settings.exclude_groups, harness)
    assert re.search(settings.exclude_topics, "__consumer_offsets")
    for ours in ("account-service", "notify-service"):
        assert not re.search(settings.exclude_groups, ours)
    assert not re.search(settings.exclude_topics, "payment.events.v1")
