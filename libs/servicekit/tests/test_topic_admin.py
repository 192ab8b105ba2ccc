"""Topic settings the admin command creates topics with."""

from __future__ import annotations

from mobi_contracts import all_topics
from servicekit.kafka.admin import topic_configs


def test_three_replicas_require_two_in_sync_for_an_acknowledged_write() -> None:
    for topic in all_topics():
        configs = topic_configs(topic, replication_factor=3)
        assert configs["min.insync.replicas"] == "2"
        assert configs["retention.ms"] == str(topic.retention_ms)


def test_a_single_local_broker_accepts_writes_with_one_replica() -> None:
    assert {topic_configs(t, replication_factor=1)["min.insync.replicas"] for t in all_topics()} == {"1"}
