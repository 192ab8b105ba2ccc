"""Topic settings the admin command creates topics with."""

from __future__ import annotations

from mobi_contracts import TOPICS, all_topics
from servicekit.kafka.admin import sized, topic_configs


def test_three_replicas_require_two_in_sync_for_an_acknowledged_write() -> None:
    for topic in all_topics():
        configs = topic_configs(topic, replication_factor=3)
        assert configs["min.insync.replicas"] == "2"
        assert configs["retention.ms"] == str(topic.retention_ms)


def test_a_single_local_broker_accepts_writes_with_one_replica() -> None:
    assert {topic_configs(t, replication_factor=1)["min.insync.replicas"] for t in all_topics()} == {"1"}


def test_a_cluster_sizes_every_event_topic_alike_and_keeps_dead_letters_as_declared() -> None:
    """Co-partitioning needs one partition count on every topic a group reads; a retention
    declared on purpose (the lifecycle's month) is kept."""
    topics = {t.name: t for t in sized(all_topics(), partitions=48, retention_hours=72)}
    events = {t.name for t in TOPICS}
    for name, topic in topics.items():
        if name in events:
            assert topic.partitions == 48, name
            assert topic.retention_ms in (72 * 3600 * 1000, 30 * 24 * 3600 * 1000), name
        else:
            assert name.startswith("dlq.") and topic.partitions == 1, name
    assert topics["subscriber.lifecycle.v1"].retention_ms == 30 * 24 * 3600 * 1000
    assert topics["network.usage.v1"].retention_ms == 72 * 3600 * 1000
    assert sized(all_topics()) == list(all_topics())
