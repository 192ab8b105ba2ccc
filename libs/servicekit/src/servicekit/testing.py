"""Pytest fixtures for tests against the real infrastructure (`pytest_plugins`).

Kafka, Redis and the store come from the environment (KAFKA_BOOTSTRAP, REDIS_URL,
MONGODB_URL), defaulting to the local platform's ports. Tests reach Kafka as principal
`tests` (every topic and group whose name starts with `test`, servicekit.kafka.acls), as
`ops` to read the platform's topics, or as the principal of the party they play. With no
MONGODB_URL but a Docker engine, a real MongoDB is started with testcontainers, so the same
tests run on MongoDB. Each test gets its own topics and database, so tests do not see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from mobi_contracts import AnyEvent, ConsumerGroup, Topic
from mobi_contracts.events.loyalty import PointsRedeemed, PointsRedeemedData, RedemptionReward
from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
from mobi_contracts.events.payment import TopupMethod, TopupRecorded, TopupRecordedData
from mobi_contracts.events.vas import DataBucketGrant, VasChargeRequested, VasChargeRequestedData

from .kafka.access import KafkaAccess
from .kafka.acls import OPS, TESTS
from .kafka.admin import ensure_topics
from .kafka.consumer import BatchHandler, EventConsumer, RetryPolicy
from .kafka.errors import DependencyProbe
from .kafka.inbox import Inbox
from .kafka.publisher import EventPublisher
from .mongo import Store
from .redis_client import create_redis

KAFKA = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def kafka_access(principal: str = TESTS) -> KafkaAccess:
    """The local platform's broker as `principal` (its generated password)."""
    return KafkaAccess.local(principal, KAFKA)


def kafka_client_options(principal: str = OPS) -> dict[str, Any]:
    """Options of a plain aiokafka client acting as `principal`: spread them into
    `AIOKafkaConsumer(...)` / `AIOKafkaProducer(...)` in tests and tools (never pass
    `bootstrap_servers` by hand), so the client presents that principal's credentials."""
    return kafka_access(principal).aiokafka()


def kafka_broker(principal: str = TESTS) -> KafkaBroker:
    """A FastStream broker (no logger) connected as `principal`."""
    access = kafka_access(principal)
    return KafkaBroker(access.bootstrap, security=access.faststream(), logger=None)


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    docker = shutil.which("docker") or "docker"
    probe = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=20)  # noqa: S603
    return probe.returncode == 0


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    if os.environ.get("MONGODB_URL"):
        yield os.environ["MONGODB_URL"]
    elif os.environ.get("TEST_USE_TESTCONTAINERS", "1") == "1" and _docker_available():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:7") as container:
            yield container.get_connection_url()
    else:
        yield "mongodb://127.0.0.1:27017/"


@asynccontextmanager
async def scratch_store(mongodb_url: str, prefix: str = "test") -> AsyncIterator[Store]:
    """A store on a database of its own, dropped afterwards."""
    db = f"{prefix}_{uuid.uuid4().hex[:10]}"
    s = Store(mongodb_url, db, app_name="tests")
    await s.connect()
    try:
        yield s
    finally:
        await s.client.drop_database(db)
        await s.close()


@pytest.fixture
async def store(mongodb_url: str) -> AsyncIterator[Store]:
    async with scratch_store(mongodb_url) as s:
        yield s


@asynccontextmanager
async def consuming(
    group: ConsumerGroup,
    handler: BatchHandler,
    redis: Redis,
    publisher: EventPublisher,
    *,
    retry: RetryPolicy | None = None,
    probe: DependencyProbe | None = None,
    inbox: Inbox | None = None,
    max_records: int = 100,
) -> AsyncIterator[EventConsumer]:
    """The kit's consumer of `group` on real Kafka, for the duration of the block."""
    broker = kafka_broker(TESTS)
    consumer = EventConsumer(
        group,
        handler,
        service="tests",
        inbox=inbox or Inbox(redis, group.name, 600),
        publisher=publisher,
        retry=retry,
        probe=probe,
    )
    consumer.subscribe(broker, max_records=max_records, batch_timeout_ms=20, fetch_max_wait_ms=50)
    await broker.start()
    try:
        yield consumer
    finally:
        await broker.stop()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(REDIS)
    yield client
    await client.aclose()


@pytest.fixture
async def publisher() -> AsyncIterator[EventPublisher]:
    p = EventPublisher(kafka_access(TESTS), "tests")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]


async def make_topic(
    name: str,
    events: tuple[type[AnyEvent], ...],
    partitions: int = 3,
    producer: str = "tests",
    also_produced_by: tuple[str, ...] = (),
) -> Topic:
    """A throwaway topic (the `tests` principal writes `test.*`). `producer`/`also_produced_by`
    are whose events a consumer of it acts on (the kit's provenance check): name the services
    a test's events claim to come from."""
    topic = Topic(
        name=name,
        description="test topic",
        events=events,
        producer=producer,
        also_produced_by=also_produced_by,
        partitions=partitions,
    )
    await ensure_topics(kafka_access(TESTS), [topic])
    return topic


async def make_group(
    name: str, topics: tuple[Topic, ...], handles: tuple[type[AnyEvent], ...]
) -> ConsumerGroup:
    group = ConsumerGroup(name=name, topics=topics, handles=handles)
    await ensure_topics(kafka_access(TESTS), [group.dead_letter])
    return group


async def committed_offsets(group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka_client_options())
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def read_all(topic: str, *, expect: int, timeout: float = 20.0) -> list[Any]:  # noqa: ASYNC109
    """Every record of a topic from the start, waiting until `expect` have arrived."""
    consumer = AIOKafkaConsumer(
        topic, auto_offset_reset="earliest", enable_auto_commit=False, **kafka_client_options()
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:  # noqa: ASYNC109
    """Polls `check` (sync or async) until it returns a truthy value; fails on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def usage_recorded(
    subject: str, charge_vnd: int, usage_id: str | None = None, producer: str = "tests"
) -> UsageRecorded:
    """A rated one-minute call as the charging system reports it."""
    usage_id = usage_id or f"U-{uuid.uuid4().hex[:12]}"
    return UsageRecorded.new(
        subject=subject,
        data=UsageRecordedData(
            usage_id=usage_id,
            kind="voice",
            quantity=60,
            unit="seconds",
            charge_vnd=charge_vnd,
            started_at=datetime.now(UTC) - timedelta(minutes=1),
        ),
        producer=producer,
        correlation_id=f"c-{usage_id}",
    )


def topup_recorded(
    subject: str,
    amount_vnd: int,
    topup_id: str,
    *,
    method: TopupMethod = "scratch_card",
    producer: str = "tests",
    correlation_id: str | None = None,
) -> TopupRecorded:
    """A TopupRecorded for `subject`, paid by the subject, recorded now."""
    return TopupRecorded.new(
        subject=subject,
        data=TopupRecordedData(
            topup_id=topup_id,
            amount_vnd=amount_vnd,
            method=method,
            payer_msisdn=subject,
            recorded_at=datetime.now(UTC),
        ),
        producer=producer,
        correlation_id=correlation_id or f"{producer}-{topup_id}",
    )


def vas_charge_requested(
    subject: str,
    charge_id: str,
    amount_vnd: int,
    *,
    bucket_kb: int | None = None,
    code: str = "FUNRING",
    producer: str = "tests",
    correlation_id: str | None = None,
) -> VasChargeRequested:
    """A charge for one day of a VAS requested now; with `bucket_kb`, a data pack whose
    bucket is `<code>-<charge_id>`."""
    now = datetime.now(UTC)
    bucket = (
        DataBucketGrant(
            bucket_id=f"{code}-{charge_id}",
            name=f"{code} pack",
            quota_kb=bucket_kb,
            expires_at=now + timedelta(days=1),
        )
        if bucket_kb
        else None
    )
    return VasChargeRequested.new(
        subject=subject,
        data=VasChargeRequestedData(
            charge_id=charge_id,
            subscription_id=f"sub-{charge_id}",
            code=code,
            kind="data_pack" if bucket else "vas_renewal",
            amount_vnd=amount_vnd,
            description=f"{code} {charge_id}",
            period_start=now,
            period_end=now + timedelta(days=1),
            data_bucket=bucket,
            requested_at=now,
        ),
        producer=producer,
        correlation_id=correlation_id or f"{producer}-{charge_id}",
    )


def points_redeemed(
    subject: str,
    redemption_id: str,
    *,
    points: int = 500,
    catalog_code: str = "CAT-1",
    producer: str = "tests",
    **reward: Any,
) -> PointsRedeemed:
    """A redemption made now; `reward` holds the RedemptionReward's fields (kind, amount_vnd, ...)."""
    return PointsRedeemed.new(
        subject=subject,
        data=PointsRedeemedData(
            redemption_id=redemption_id,
            points=points,
            reward=RedemptionReward(catalog_code=catalog_code, **reward),
            redeemed_at=datetime.now(UTC),
        ),
        producer=producer,
        correlation_id=f"{producer}-{redemption_id}",
    )
