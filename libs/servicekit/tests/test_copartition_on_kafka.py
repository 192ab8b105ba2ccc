"""Two processes of one consumer group reading two topics: each subscriber's events of both
topics are handled by one process, so a subscriber's documents have one writer. Kafka's
default round-robin assignment gives partition p of the two topics to different members."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.acls import TESTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import eventually, kafka_access, make_group, make_topic, topup_recorded

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("copartition_worker.py")
SUBSCRIBERS = [f"8490{n:07d}" for n in range(60)]


@contextmanager
def member(first: str, second: str, group: str, key: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, str(WORKER), first, second, group, key], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"started"
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


async def both_members_assigned(group: str) -> bool:
    """The group is stable with its two members (DescribeGroups: error, id, state, protocol
    type, protocol, members)."""
    admin = AIOKafkaAdminClient(**kafka_access(TESTS).aiokafka())
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
    finally:
        await admin.close()
    _, _, state, _, protocol, members = response.groups[0][:6]
    return bool(state == "Stable" and protocol == "copartition" and len(members) == 2)


async def test_two_processes_handle_each_subscribers_events_of_every_topic_in_one_process(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    first = await make_topic(f"test.copart-a.{unique}", (TopupRecorded,), partitions=3)
    second = await make_topic(f"test.copart-b.{unique}", (TopupRecorded,), partitions=3)
    group = await make_group(f"test-copart-{unique}", (first, second), (TopupRecorded,))
    key = f"test:copartition:{unique}"
    with member(first.name, second.name, group.name, key), member(first.name, second.name, group.name, key):
        await eventually(lambda: both_members_assigned(group.name), timeout=60)
        for topic in (first, second):
            await publisher.publish(
                topic.name,
                [topup_recorded(n, 1_000, f"{topic.name}-{n}-{uuid.uuid4().hex[:6]}") for n in SUBSCRIBERS],
            )
        await eventually(lambda: _all_handled(redis, key), timeout=60)
    handled_by: dict[str, set[bytes]] = defaultdict(set)
    for field, pid in (await redis.hgetall(key)).items():
        handled_by[field.decode().split(":")[0]].add(pid)
    await redis.delete(key)
    assert {n: len(p) for n, p in handled_by.items() if len(p) > 1} == {}
    assert len({p for pids in handled_by.values() for p in pids}) == 2, "both processes had a share"


async def _all_handled(redis: Redis, key: str) -> bool:
    return await redis.hlen(key) >= 2 * len(SUBSCRIBERS)
