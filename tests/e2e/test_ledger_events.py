"""Balance events on real Kafka, observed through the API: replays change nothing, poison
messages go to the dead-letter topic and the consumer goes on."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
from mobi_contracts.events.payment import TopupRecorded
from mobi_contracts.topics import ACCOUNT_LEDGER_GROUP, NETWORK_USAGE, PAYMENT_EVENTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import KAFKA, eventually, topup_recorded

from .conftest import header_login

pytestmark = pytest.mark.e2e


def topup(msisdn: str, amount: int, topup_id: str) -> TopupRecorded:
    return topup_recorded(msisdn, amount, topup_id, producer="e2e-tests", correlation_id=f"e2e-{topup_id}")


async def balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await client.get("/api/v1/me/balances", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["main"]["balance_vnd"])


async def test_a_replayed_topup_event_changes_the_balance_once(
    carrier: httpx.AsyncClient, subscriber: str, publisher: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    event = topup(subscriber, 30_000, f"E2E-{subscriber}")
    await publisher.publish(PAYMENT_EVENTS.name, [event])
    await eventually(lambda: _is(carrier, auth, 30_000))
    await publisher.publish(PAYMENT_EVENTS.name, [event, event])
    await publisher.publish(
        PAYMENT_EVENTS.name, [topup(subscriber, 30_000, f"E2E-{subscriber}")]
    )  # new id, same top-up
    marker = topup(subscriber, 1_000, f"E2E-marker-{subscriber}")
    await publisher.publish(PAYMENT_EVENTS.name, [marker])
    await eventually(
        lambda: _is(carrier, auth, 31_000)
    )  # the marker after the replays applied: they were seen
    history = (await carrier.get("/api/v1/me/topups", headers=auth)).json()["items"]
    assert sorted(h["amount_vnd"] for h in history) == [1_000, 30_000]


async def test_usage_beyond_the_balance_is_refused_and_shows_nowhere(
    carrier: httpx.AsyncClient, subscriber: str, publisher: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    await publisher.publish(PAYMENT_EVENTS.name, [topup(subscriber, 2_000, f"E2E-u-{subscriber}")])
    await eventually(lambda: _is(carrier, auth, 2_000))
    now = datetime.now(UTC)
    calls = [
        UsageRecorded.new(
            subject=subscriber,
            data=UsageRecordedData(
                usage_id=f"CDR-{subscriber}-{n}",
                kind="voice",
                quantity=60,
                unit="seconds",
                charge_vnd=charge,
                started_at=now,
            ),
            producer="ocs-mediation",
            correlation_id=f"cdr-{n}",
        )
        for n, charge in enumerate([1_500, 1_000, 400])
    ]
    await publisher.publish(NETWORK_USAGE.name, calls)
    await eventually(lambda: _charges(carrier, auth, 2))
    assert await balance(carrier, auth) == 100  # 2000 - 1500 - 400; the 1000 call was refused
    items = (await carrier.get("/api/v1/me/charges", headers=auth)).json()["items"]
    assert sorted(i["amount_vnd"] for i in items) == [400, 1_500]


async def test_a_poison_message_lands_in_the_dead_letter_topic_and_the_consumer_goes_on(
    carrier: httpx.AsyncClient, subscriber: str, publisher: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    dlq = ACCOUNT_LEDGER_GROUP.dead_letter.name
    start = await _end_offset(dlq)
    poison = b'{"event_type": "TopupRecorded", "event_version": 1, "data": "' + subscriber.encode() + b'"}'
    await publisher.send_raw(PAYMENT_EVENTS.name, key=subscriber.encode(), value=poison, headers=[])
    await publisher.publish(PAYMENT_EVENTS.name, [topup(subscriber, 5_000, f"E2E-after-poison-{subscriber}")])
    await eventually(lambda: _is(carrier, auth, 5_000))
    letters = await _read_from(dlq, start)
    mine = [r for r in letters if r.value == poison]
    assert len(mine) == 1
    headers = dict(mine[0].headers)
    assert headers["dlq-reason"] == b"malformed"
    assert headers["dlq-topic"] == PAYMENT_EVENTS.name.encode()
    assert b"not an event envelope" in headers["dlq-error"]


async def _is(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await balance(client, auth) == expected


async def _charges(client: httpx.AsyncClient, auth: dict[str, str], count: int) -> bool:
    return len((await client.get("/api/v1/me/charges", headers=auth)).json()["items"]) >= count


async def _end_offset(topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _read_from(topic: str, offset: int) -> list[object]:
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
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
