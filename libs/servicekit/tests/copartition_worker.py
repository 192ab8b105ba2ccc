"""One member of a consumer group reading two topics, as a process of its own: it records in
Redis which process handled each subscriber's events (tests/test_copartition_on_kafka.py)."""

from __future__ import annotations

import asyncio
import os
import sys

from mobi_contracts import AnyEvent, ConsumerGroup, Topic
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.acls import TESTS
from servicekit.kafka.consumer import EventConsumer
from servicekit.kafka.inbox import Inbox
from servicekit.kafka.publisher import EventPublisher
from servicekit.redis_client import create_redis
from servicekit.testing import REDIS, kafka_access, kafka_broker


async def main(first: str, second: str, group_name: str, record_key: str) -> None:
    topics = tuple(
        Topic(name=n, description="", events=(TopupRecorded,), producer="tests") for n in (first, second)
    )
    group = ConsumerGroup(name=group_name, topics=topics, handles=(TopupRecorded,))
    redis = create_redis(REDIS)
    publisher = EventPublisher(kafka_access(TESTS), "copartition-worker")
    await publisher.start()
    me = str(os.getpid())

    async def record(events: list[AnyEvent]) -> None:
        await redis.hset(record_key, mapping={f"{e.subject}:{e.event_id}": me for e in events})

    broker = kafka_broker(TESTS)
    consumer = EventConsumer(
        group, record, service="copartition", inbox=Inbox(redis, group_name, 600), publisher=publisher
    )
    consumer.subscribe(broker, max_records=50, batch_timeout_ms=20, fetch_max_wait_ms=50)
    await broker.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
