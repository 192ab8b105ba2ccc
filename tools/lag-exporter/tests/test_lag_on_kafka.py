"""The exporter on the local platform's real Kafka: a group's lag, committed and end offsets and
members as the broker has them, read as `ops`, served on /metrics; /ready after a reading."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from fastapi.testclient import TestClient

from lag_exporter.broker import BrokerReader
from lag_exporter.main import create_app
from lag_exporter.settings import LagExporterSettings
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.acls import OPS
from servicekit.testing import kafka_access, kafka_client_options, make_topic, topup_recorded

pytestmark = pytest.mark.integration


async def topic_with_a_lagging_group(unique: str, publisher) -> tuple[str, str]:
    """A one-partition topic with 5 records and a group (no members) committed at offset 2."""
    topic = await make_topic(f"test.lag.{unique}", (TopupRecorded,), partitions=1)
    await publisher.publish(
        topic.name, [topup_recorded("84901234567", 1000 + i, f"lag-{unique}-{i}") for i in range(5)]
    )
    group = f"test-lag-{unique}"
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka_client_options("tests"))
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic.name, 0)])
        await consumer.commit({TopicPartition(topic.name, 0): OffsetAndMetadata(2, "")})
    finally:
        await consumer.stop()
    return topic.name, group


def only(name: str) -> str:
    """A regular expression excluding every name but `name` (the broker holds many test groups)."""
    return rf"^(?!{name}$)"


async def test_the_broker_reading_has_the_groups_lag_and_no_members(unique: str, publisher) -> None:
    topic, group = await topic_with_a_lagging_group(unique, publisher)
    reader = BrokerReader(kafka_access(OPS), exclude_groups=only(group), exclude_topics=only(topic))
    await reader.start()
    try:
        reading = await reader.read()
    finally:
        await reader.stop()
    assert dict(reading.committed) == {group: {(topic, 0): 2}}
    assert dict(reading.end) == {(topic, 0): 5}
    assert dict(reading.members) == {group: 0}


async def test_the_app_serves_the_lag_once_it_has_read_the_broker(unique: str, publisher) -> None:
    topic, group = await topic_with_a_lagging_group(unique, publisher)
    settings = LagExporterSettings(
        kafka_username=OPS, exclude_groups=only(group), exclude_topics=only(topic), poll_interval_seconds=0.5
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.2)
        assert client.get("/health").json()["status"] == "ok"
        text = client.get("/metrics").text
    labels = f'group="{group}",partition="0",topic="{topic}"'
    assert f"kafka_consumergroup_lag{{{labels}}} 3.0" in text
    assert f"kafka_consumergroup_committed_offset{{{labels}}} 2.0" in text
    assert f'kafka_topic_partition_end_offset{{partition="0",topic="{topic}"}} 5.0' in text
    assert f'kafka_consumergroup_members{{group="{group}"}} 0.0' in text
    assert 'kafka_lag_exporter_polls_total{result="ok"}' in text


async def test_without_a_broker_it_is_not_ready_and_says_why() -> None:
    settings = LagExporterSettings(
        kafka_bootstrap="127.0.0.1:9", kafka_username=OPS, poll_interval_seconds=0.5, request_timeout_ms=1000
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        exporter = client.app.state.exporter  # type: ignore[attr-defined]
        while not exporter.last_error:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answer = client.get("/ready")
        assert answer.status_code == 503
        assert answer.json()["checks"]["kafka"].startswith("error: ")
        text = client.get("/metrics").text
    assert "kafka_consumergroup_lag{" not in text
    assert 'kafka_lag_exporter_polls_total{result="error"}' in text
