"""The kit's batch consumer on real Kafka and Redis: commit after success, no skipped
messages, no doubled effects, poison to the dead-letter topic."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from pymongo.errors import OperationFailure
from redis.asyncio import Redis

from mobi_contracts import ConsumerGroup, Envelope
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.consumer import EventConsumer, RetryPolicy
from servicekit.kafka.errors import DependencyProbe, TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import (
    committed_offsets,
    eventually,
    make_group,
    make_topic,
    read_all,
    topup_recorded,
    usage_recorded,
    vas_charge_requested,
)
from servicekit.testing import consuming as kit_consuming

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(poison_attempts=2, base_delay=0.01, max_delay=0.05, hold_seconds=0.1)


def topup(n: int, subject: str = "84901234567") -> TopupRecorded:
    return topup_recorded(subject, 1000 + n, f"t{n}", correlation_id=f"corr-{n}")


@asynccontextmanager
async def consuming(
    group: ConsumerGroup,
    handler: Callable[[list[Envelope]], Awaitable[None]],
    redis: Redis,
    publisher: EventPublisher,
    retry: RetryPolicy = FAST_RETRY,
    probe: DependencyProbe | None = None,
) -> AsyncIterator[EventConsumer]:
    async with kit_consuming(group, handler, redis, publisher, retry=retry, probe=probe) as consumer:
        yield consumer


async def test_batch_that_keeps_failing_is_not_committed_and_is_redelivered_after_restart(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.redeliver.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-redeliver-{unique}", (topic,), (TopupRecorded,))
    events = [topup(i) for i in range(5)]
    attempts = 0

    async def broken(batch: list[Envelope]) -> None:
        nonlocal attempts
        attempts += len(batch)
        raise TransientError("store down")

    async with consuming(group, broken, redis, publisher):
        await publisher.publish(topic.name, events)
        await eventually(lambda: attempts >= 10)
    assert (await committed_offsets(group.name, topic.name, 1))[0] is None

    applied: list[str] = []

    async def healthy(batch: list[Envelope]) -> None:
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, healthy, redis, publisher):
        await eventually(lambda: len(applied) == 5)
        await eventually(lambda: committed_offsets(group.name, topic.name, 1), timeout=10)
    assert applied == [str(e.event_id) for e in events]
    assert (await committed_offsets(group.name, topic.name, 1))[0] == 5


async def test_failed_message_is_not_skipped_when_later_messages_on_its_partition_succeed(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    # faststream #1980/#2618: with ack-first or ack-on-error, message 3 would be lost once
    # messages after it are committed. The kit nacks (seeks back) instead.
    topic = await make_topic(f"test.noskip.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-noskip-{unique}", (topic,), (TopupRecorded,))
    events = [topup(i) for i in range(10)]
    failures_left = 6  # more than one batch's worth of transient retries: forces a nack
    applied: list[str] = []

    async def flaky_on_third(batch: list[Envelope]) -> None:
        nonlocal failures_left
        if any(e.event_id == events[3].event_id for e in batch) and failures_left:
            failures_left -= 1
            raise TransientError("write conflict")
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, flaky_on_third, redis, publisher):
        for event in events:  # one by one, so later messages arrive while 3 is failing
            await publisher.publish(topic.name, [event])
        await eventually(lambda: len(applied) >= 10)
        await asyncio.sleep(0.5)
    assert applied == [str(e.event_id) for e in events], "every message applied once, in order"
    assert (await committed_offsets(group.name, topic.name, 1))[0] == 10


async def test_poison_messages_go_to_the_dead_letter_topic_with_their_error_and_the_rest_apply(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.poison.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-poison-{unique}", (topic,), (TopupRecorded,))
    good = [topup(i) for i in range(6)]
    bad = topup(99)
    applied: list[str] = []

    async def rejects_99(batch: list[Envelope]) -> None:
        if any(e.event_id == bad.event_id for e in batch):
            raise ValueError("amount 1099 is not allowed for this account")
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, rejects_99, redis, publisher):
        await publisher.publish(topic.name, good[:3])
        await publisher.send_raw(topic.name, key=b"84901234567", value=b"{not json", headers=[])
        await publisher.publish(topic.name, [bad, *good[3:]])
        await eventually(lambda: len(applied) == 6)
        await eventually(lambda: committed_offsets(group.name, topic.name, 1), timeout=10)
        await asyncio.sleep(0.3)

    assert sorted(applied) == sorted(str(e.event_id) for e in good)
    dead = await read_all(group.dead_letter.name, expect=2)
    reasons = {dict(r.headers)["dlq-reason"].decode(): r for r in dead}
    assert set(reasons) == {"malformed", "handler_error"}
    handler_error = dict(reasons["handler_error"].headers)
    assert b"amount 1099 is not allowed" in handler_error["dlq-error"]
    assert handler_error["dlq-topic"].decode() == topic.name
    assert handler_error["dlq-offset"] == b"4"
    assert reasons["malformed"].value == b"{not json"
    assert (await committed_offsets(group.name, topic.name, 1))[0] == 8


async def test_an_event_published_twice_reaches_the_handler_once(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.dupes.{unique}", (TopupRecorded,))
    group = await make_group(f"test-dupes-{unique}", (topic,), (TopupRecorded,))
    event = topup(1)
    seen: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        seen.extend(str(e.event_id) for e in batch)

    async with consuming(group, record, redis, publisher):
        await publisher.publish(topic.name, [event, event])
        await eventually(lambda: seen)
        await publisher.publish(topic.name, [event])
        await asyncio.sleep(1.0)
    assert seen == [str(event.event_id)]


async def test_events_of_unknown_types_are_skipped_without_dead_lettering(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.unknown.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-unknown-{unique}", (topic,), (TopupRecorded,))
    known = topup(1)
    future = known.model_dump(mode="json") | {"event_type": "TopupReversed", "event_version": 1}
    seen: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        seen.extend(e.event_type for e in batch)

    async with consuming(group, record, redis, publisher):
        await publisher.send_raw(topic.name, key=b"84901234567", value=orjson.dumps(future), headers=[])
        await publisher.publish(topic.name, [known])
        await eventually(lambda: seen)
        await eventually(lambda: committed_offsets(group.name, topic.name, 1), timeout=10)
    assert seen == ["TopupRecorded"]
    assert await read_all(group.dead_letter.name, expect=1, timeout=2) == []


async def test_the_oldest_record_of_each_partition_in_a_batch_is_timed_from_its_producer_timestamp(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    from servicekit.metrics import EVENT_DELIVERY_SECONDS

    topic = await make_topic(f"test.delivery.{unique}", (TopupRecorded,))
    group = await make_group(f"test-delivery-{unique}", (topic,), (TopupRecorded,))
    seen: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        seen.extend(str(e.event_id) for e in batch)

    timed = EVENT_DELIVERY_SECONDS.labels("tests", group.name, topic.name)
    async with consuming(group, record, redis, publisher):
        await publisher.publish(topic.name, [topup(n, subject=f"8490123456{n}") for n in range(5)])
        await eventually(lambda: len(seen) == 5)
    samples = {s.name: s.value for s in timed.collect()[0].samples if s.name.endswith(("_count", "_sum"))}
    # One observation per partition per batch: 5 records on 3 partitions make 1 to 5 of them.
    assert 1 <= samples["event_delivery_seconds_count"] <= 5
    assert 0 < samples["event_delivery_seconds_sum"] < 60


async def test_an_unknown_version_of_a_handled_type_is_dead_lettered_not_dropped(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.newversion.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-newversion-{unique}", (topic,), (TopupRecorded,))
    known = topup(1)
    upgraded = topup(2).model_dump(mode="json") | {"event_version": 2}
    seen: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        seen.extend(str(e.event_id) for e in batch)

    async with consuming(group, record, redis, publisher):
        await publisher.send_raw(topic.name, key=b"84901234567", value=orjson.dumps(upgraded), headers=[])
        await publisher.publish(topic.name, [known])
        await eventually(lambda: seen)
        await eventually(lambda: committed_offsets(group.name, topic.name, 1), timeout=10)
    assert seen == [str(known.event_id)]
    dead = await read_all(group.dead_letter.name, expect=1)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq-reason"] == b"unknown_version"
    assert b"TopupRecorded v2" in headers["dlq-error"]
    assert orjson.loads(dead[0].value)["event_version"] == 2


async def test_a_store_outage_is_waited_out_and_never_dead_lettered(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    # FerretDB answers every command with OperationFailure (InternalError, code 1) while its
    # PostgreSQL is down: the old allow-list treated that as poison after 0.15 s.
    topic = await make_topic(f"test.outage.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-outage-{unique}", (topic,), (TopupRecorded,))
    events = [topup(i) for i in range(5)]
    outage_ends: list[float] = []  # the store is down for two seconds from the first batch on
    applied: list[str] = []
    health: list[bool] = []

    async def store_down_for_two_seconds(batch: list[Envelope]) -> None:
        now = asyncio.get_running_loop().time()
        if not outage_ends:
            outage_ends.append(now + 2.0)
        if now < outage_ends[0]:
            raise OperationFailure("failed to connect to `user=ferretdb database=ferretdb`", code=1)
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, store_down_for_two_seconds, redis, publisher) as consumer:
        await publisher.publish(topic.name, events)
        await eventually(lambda: not consumer.healthy, timeout=30)
        health.append(consumer.healthy)
        await eventually(lambda: len(applied) == 5, timeout=15)
        health.append(consumer.healthy)
        await eventually(lambda: committed_offsets(group.name, topic.name, 1), timeout=10)
    assert health == [False, True], "unhealthy (not ready) during the outage, healthy after"
    assert sorted(applied) == sorted(str(e.event_id) for e in events)
    assert await read_all(group.dead_letter.name, expect=1, timeout=2) == []


async def test_an_unexpected_error_is_an_outage_while_a_dependency_is_down_and_poison_after(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.probe.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-probe-{unique}", (topic,), (TopupRecorded,))
    redis_back = asyncio.Event()
    calls = 0

    async def dependencies_answer() -> bool:
        return redis_back.is_set()

    async def always_fails(batch: list[Envelope]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("the cache answered garbage")

    async with consuming(group, always_fails, redis, publisher, probe=dependencies_answer) as consumer:
        await publisher.publish(topic.name, [topup(1)])
        await eventually(lambda: calls >= 5)
        assert not consumer.healthy
        assert await read_all(group.dead_letter.name, expect=1, timeout=1) == []
        redis_back.set()
        dead = await read_all(group.dead_letter.name, expect=1, timeout=10)
    assert [dict(r.headers)["dlq-reason"] for r in dead] == [b"handler_error"]


def test_the_kit_runs_on_the_faststream_release_whose_nack_it_relies_on() -> None:
    # test_failed_message_is_not_skipped_when_later_messages_on_its_partition_succeed proves the
    # behaviour on real Kafka; an upgrade must be made on purpose, with that test re-run.
    assert importlib.metadata.version("faststream") == "0.7.8"


async def test_events_of_another_producer_or_type_than_the_topic_declares_are_dead_lettered_unapplied(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    """Provenance: the topic carries TopupRecorded from `tests` only. A TopupRecorded naming
    another producer, and an event of a type the group handles but this topic does not
    carry, change nothing and are dead-lettered with the reason; the good one after them is
    applied."""
    from mobi_contracts.events.vas import VasChargeRequested

    topic = await make_topic(f"test.provenance.{unique}", (TopupRecorded,), partitions=1)
    group = await make_group(f"test-provenance-{unique}", (topic,), (TopupRecorded, VasChargeRequested))
    forged = topup_recorded("84901234567", 5_000_000, "forged", producer="anyone")
    stray = vas_charge_requested("84901234567", "sub-X:0", 1000, producer="tests")
    good = topup(1)
    applied: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, record, redis, publisher):
        await publisher.publish(topic.name, [forged, stray, good])
        await eventually(lambda: applied)
        letters = await read_all(group.dead_letter.name, expect=2)
    assert applied == [str(good.event_id)]
    reasons = {orjson.loads(r.value)["event_id"]: dict(r.headers)["dlq-reason"] for r in letters}
    assert reasons == {
        str(forged.event_id): b"not_from_topic_owner",
        str(stray.event_id): b"not_on_this_topic",
    }


async def test_a_contract_event_on_a_topic_not_carrying_it_is_dead_lettered_by_a_group_ignoring_its_type(
    redis: Redis, publisher: EventPublisher, unique: str
) -> None:
    """A group that handles only usage (the account ledger's usage lane) meets a TopupRecorded
    on the usage topic: not its type, but a contract's event this topic never carries, so a
    forgery or a misrouted producer, dead-lettered as `not_on_this_topic`. An event type no
    contract knows (a newer producer's) is skipped as before, and the usage after both applied."""
    from mobi_contracts.events.network import UsageRecorded

    topic = await make_topic(f"test.usage-lane.{unique}", (UsageRecorded,), partitions=1)
    group = await make_group(f"test-usage-lane-{unique}", (topic,), (UsageRecorded,))
    forged = topup_recorded("84901234567", 5_000_000, "forged-on-usage")
    future = orjson.loads(usage_recorded("84901234567", 10).model_dump_json())
    future["event_type"] = "network.usage.summarised"
    good = usage_recorded("84901234567", 1_000)
    applied: list[str] = []

    async def record(batch: list[Envelope]) -> None:
        applied.extend(str(e.event_id) for e in batch)

    async with consuming(group, record, redis, publisher):
        await publisher.publish(topic.name, [forged])
        await publisher.send_raw(topic.name, key=b"84901234567", value=orjson.dumps(future), headers=[])
        await publisher.publish(topic.name, [good])
        await eventually(lambda: applied)
        letters = await read_all(group.dead_letter.name, expect=1, timeout=5)
    assert applied == [str(good.event_id)]
    assert [(orjson.loads(r.value)["event_id"], dict(r.headers)["dlq-reason"]) for r in letters] == [
        (str(forged.event_id), b"not_on_this_topic")
    ]
