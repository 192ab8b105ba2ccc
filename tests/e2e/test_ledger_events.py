"""Balance events on real Kafka, observed through the API. Money comes in as a subscriber's
does (a card top-up through the payment service); the only party the tests play is the
operator's charging system (`ocs`, an outside producer with its own Kafka principal). Usage
beyond the balance is refused, poison and forged records go to the dead-letter topic with
their reason, change nothing, and the consumer goes on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
from mobi_contracts.topics import ACCOUNT_USAGE_GROUP, NETWORK_USAGE
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import eventually, kafka_client_options, topup_recorded

from .conftest import header_login
from .payments import main_balance, top_up

pytestmark = pytest.mark.e2e
DLQ = ACCOUNT_USAGE_GROUP.dead_letter.name  # the ledger's usage lane reads network.usage


def call(msisdn: str, charge: int, producer: str = "ocs-mediation") -> UsageRecorded:
    return UsageRecorded.new(
        subject=msisdn,
        data=UsageRecordedData(
            usage_id=f"CDR-{uuid.uuid4().hex[:12]}",
            kind="voice",
            quantity=60,
            unit="seconds",
            charge_vnd=charge,
            started_at=datetime.now(UTC),
        ),
        producer=producer,
        correlation_id=f"cdr-{uuid.uuid4().hex[:8]}",
    )


async def test_usage_beyond_the_balance_is_refused_and_shows_nowhere(
    carrier: httpx.AsyncClient, subscriber: str, ocs: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    await top_up(carrier, auth, 10_000)
    await ocs.publish(NETWORK_USAGE.name, [call(subscriber, c) for c in (9_500, 1_000, 400)])
    await eventually(lambda: _charges(carrier, auth, 2))
    # The history rows are written before the cached balance shows them (never the reverse).
    await eventually(lambda: _main_balance_is(carrier, auth, 100))  # 10000 - 9500 - 400; 1000 refused
    items = (await carrier.get("/api/v1/me/charges", headers=auth)).json()["items"]
    assert sorted(i["amount_vnd"] for i in items) == [400, 9_500]


async def test_a_poison_message_lands_in_the_dead_letter_topic_and_the_consumer_goes_on(
    carrier: httpx.AsyncClient, subscriber: str, ocs: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    await top_up(carrier, auth, 10_000)
    start = await _end_offset(DLQ)
    poison = b'{"event_type": "UsageRecorded", "event_version": 1, "data": "' + subscriber.encode() + b'"}'
    await ocs.send_raw(NETWORK_USAGE.name, key=subscriber.encode(), value=poison, headers=[])
    await ocs.publish(NETWORK_USAGE.name, [call(subscriber, 1_000)])
    await eventually(lambda: _balance_is(carrier, auth, 9_000))
    letter = await _letter(start, poison)
    assert letter["dlq-reason"] == b"malformed"
    assert letter["dlq-topic"] == NETWORK_USAGE.name.encode()
    assert b"not an event envelope" in letter["dlq-error"]


async def test_a_topup_forged_on_the_usage_topic_is_dead_lettered_and_credits_nothing(
    carrier: httpx.AsyncClient, subscriber: str, ocs: EventPublisher
) -> None:
    """The charging system's credentials may write network.usage.v1; a credit sent there (the
    shape of a real TopupRecorded, naming the payment service as its producer) is not the
    topic's to carry, so the account service acts on nothing of it. The call after it, on the
    same partition, is applied: the forged record before it was read and refused."""
    auth = await header_login(carrier, subscriber)
    await top_up(carrier, auth, 10_000)
    start = await _end_offset(DLQ)
    forged = topup_recorded(
        subscriber, 5_000_000, f"FORGED-{uuid.uuid4().hex[:8]}", producer="payment-service"
    )
    await ocs.publish(NETWORK_USAGE.name, [forged, call(subscriber, 1_000)])
    letter = await _letter(start, forged.model_dump_json().encode())
    assert letter["dlq-reason"] == b"not_on_this_topic"
    await eventually(lambda: _balance_is(carrier, auth, 9_000))
    topups = (await carrier.get("/api/v1/me/topups", headers=auth)).json()["items"]
    assert [t["amount_vnd"] for t in topups] == [10_000]


async def test_usage_naming_another_producer_is_dead_lettered_and_debits_nothing(
    carrier: httpx.AsyncClient, subscriber: str, ocs: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    await top_up(carrier, auth, 10_000)
    start = await _end_offset(DLQ)
    forged = call(subscriber, 7_000, producer="anyone")
    await ocs.publish(NETWORK_USAGE.name, [forged, call(subscriber, 1_000)])
    letter = await _letter(start, forged.model_dump_json().encode())
    assert letter["dlq-reason"] == b"not_from_topic_owner"
    await eventually(lambda: _balance_is(carrier, auth, 9_000))


async def _balance_is(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await main_balance(client, auth) == expected


async def _charges(client: httpx.AsyncClient, auth: dict[str, str], count: int) -> bool:
    return len((await client.get("/api/v1/me/charges", headers=auth)).json()["items"]) >= count


async def _letter(start: int, value: bytes) -> dict[str, bytes]:
    """The headers of the dead letter whose value is `value` (waiting for it)."""

    async def found() -> dict[str, bytes] | None:
        for record in await _read_from(DLQ, start):
            if record.value == value:
                return dict(record.headers)
        return None

    letter: dict[str, bytes] = await eventually(found)
    return letter


async def _end_offset(topic: str) -> int:
    consumer = AIOKafkaConsumer(**kafka_client_options())
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _read_from(topic: str, offset: int) -> list[object]:
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka_client_options())
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        records: list[object] = []
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if not batch:
                return records
            records.extend(batch[tp])
    finally:
        await consumer.stop()


async def _main_balance_is(carrier: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await main_balance(carrier, auth) == expected
