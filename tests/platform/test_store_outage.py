"""A store outage is waited out, never dead-lettered: stop the store for 30 s while top-ups
and rated calls flow.

FerretDB answers every command with an OperationFailure (InternalError, code 1) while its
PostgreSQL is down. The consumers used to treat that as poison: three quick tries, then the
dead-letter topic, so the top-ups of the outage were never credited. Now they wait, report
not ready meanwhile, and apply everything once the store is back."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mobi_contracts.topics import (
    ACCOUNT_LEDGER_GROUP,
    ACCOUNT_USAGE_GROUP,
    NETWORK_USAGE,
    PAYMENT_CREDITS_GROUP,
)
from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.acls import OPS
from servicekit.kafka.publisher import EventPublisher

from .conftest import Platform, run, wait_for
from .money import Subscriber, usage

pytestmark = pytest.mark.integration
OUTAGE_SECONDS = 30


async def dead_letters(bootstrap: str) -> dict[str, int]:
    """The end offset of each money consumer's dead-letter topic."""
    consumer = AIOKafkaConsumer(**KafkaAccess.local(OPS, bootstrap).aiokafka())
    await consumer.start()
    try:
        groups = (ACCOUNT_LEDGER_GROUP, ACCOUNT_USAGE_GROUP, PAYMENT_CREDITS_GROUP)
        topics = [TopicPartition(g.dead_letter.name, 0) for g in groups]
        ends = await consumer.end_offsets(topics)
        return {tp.topic: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def consumer_waiting(platform: Platform) -> bool:
    """The account service reports its usage lane waiting out the outage (and so not ready):
    the rated calls reach it while the store is down (the top-ups cannot: the payment service
    records them in the store before it announces them)."""
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        try:
            r = await client.get(platform.url("account") + "/ready")
        except httpx.HTTPError:
            return False
    check = r.json().get("checks", {}).get(f"consumer {ACCOUNT_USAGE_GROUP.name}", "")
    return r.status_code == 503 and check.startswith("waiting out an outage")


async def test_a_30_second_store_outage_while_top_ups_flow_loses_and_doubles_nothing(
    healthy: Platform,
) -> None:
    platform = healthy
    if not platform.has_ferretdb or platform.env["FERRETDB_BACKEND"] != "postgresql":
        pytest.skip("stops the PostgreSQL behind the local FerretDB")
    bootstrap = f"127.0.0.1:{platform.port('kafka')}"
    letters_before = await dead_letters(bootstrap)
    # The operator's charging system keeps rating calls during the outage: the events the
    # account consumer meets while the store is down (it plays no service of ours).
    ocs = EventPublisher(KafkaAccess.local("ocs-mediation", bootstrap), "ocs-mediation")
    await ocs.start()
    async with Subscriber(platform) as me:
        await me.pay(await me.start_card_topup(50_000))
        await wait_for(lambda: _balance_is(me, 50_000), timeout=60)
        cards = [await me.start_card_topup(amount) for amount in (10_000, 20_000)]
        tag = uuid.uuid4().hex[:8]
        calls = [usage(me.msisdn, 1_000, f"OUTAGE-{tag}-{n}") for n in range(20)]
        assert run("platform.sh", "stop-app", "postgres").returncode == 0
        began = time.monotonic()
        try:
            await ocs.publish(NETWORK_USAGE.name, calls[:10])
            await asyncio.gather(me.pay(cards[0]), me.pay(cards[1]))  # the provider retries its IPNs
            await ocs.publish(NETWORK_USAGE.name, calls[10:])
            await wait_for(lambda: consumer_waiting(platform), timeout=OUTAGE_SECONDS)
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
        finally:
            assert run("platform.sh", "start", "postgres").returncode == 0
            await ocs.stop()
        recovered = await wait_for(platform.all_ready, timeout=120)
        print(f"store back after {OUTAGE_SECONDS} s; platform ready {recovered:.1f} s later")
        expected = 50_000 + 10_000 + 20_000 - 20 * 1_000
        await wait_for(lambda: _balance_is(me, expected), timeout=180, interval=1.0)
        await asyncio.sleep(3)  # anything doubled would show by now
        assert await me.balance() == expected
        assert len(await me.topups()) == 3
    assert await dead_letters(bootstrap) == letters_before, "an outage is never a dead letter"


async def _balance_is(me: Subscriber, expected: int) -> bool:
    return await me.balance() == expected
