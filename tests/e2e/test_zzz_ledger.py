"""Runs last (marker `last`, after tests/platform too): replaying the money consumers from
offset 0 changes nothing, and the money invariants (`make ledger-check`) hold after
everything the suite did."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from mobi_contracts.topics import (
    ACCOUNT_LEDGER_GROUP,
    ACCOUNT_USAGE_GROUP,
    PAYMENT_CREDITS_GROUP,
    ConsumerGroup,
)
from servicekit.kafka.acls import OPS
from servicekit.kafka.admin import partitions_of, reset_to_earliest
from servicekit.redis_client import create_redis
from servicekit.testing import REDIS, eventually, kafka_access, kafka_client_options

pytestmark = [pytest.mark.e2e, pytest.mark.last]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MONGO = "mongodb://127.0.0.1:27017/"


def platform(*args: str) -> None:
    subprocess.run(
        [str(ROOT / "deploy/local/platform.sh"), *args], check=True, capture_output=True, timeout=180
    )


def ledger_check() -> tuple[int, str]:
    result = subprocess.run(
        # Over everything the platform holds: 2 min 18 s for 73,000 decisions on this machine.
        [str(BIN / "ledger-check"), "--grace-seconds", "20"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


async def money_state() -> dict[str, object]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(MONGO)
    try:
        accounts, payments = client["account_service"], client["payment_service"]
        return {
            "balances": await current_balances(accounts),
            "decisions": await accounts["journal"].count_documents({}),
            "topups": await accounts["topups"].count_documents({}),
            "landed": await payments["credits"].count_documents({}),
        }
    finally:
        await client.close()


async def current_balances(accounts: Any) -> dict[object, tuple[int, int]]:
    """Every subscriber's current (main, seq). The journal is the truth: the state after a
    subscriber's last decision; its snapshot (`balances`) may lag it, and a replay may bring a
    lagging snapshot up to date, so only a number with no decision is taken from its snapshot."""
    states = {d["_id"]: (d["main"], d.get("seq", 0)) async for d in accounts["balances"].find({})}
    decided: dict[object, tuple[int, int]] = {}
    async for d in accounts["journal"].find({}, {"msisdn": 1, "seq": 1, "state_after": 1}):
        if d["seq"] > decided.get(d["msisdn"], (0, 0))[1]:
            decided[d["msisdn"]] = (d["state_after"]["main"], d["seq"])
    return states | decided


async def offsets(group: ConsumerGroup) -> tuple[int, int, int]:
    """(records in the group's topics, committed position summed, end offsets summed)."""
    partitions = await partitions_of(kafka_access(OPS), [t.name for t in group.topics])
    consumer = AIOKafkaConsumer(group_id=group.name, enable_auto_commit=False, **kafka_client_options())
    await consumer.start()
    try:
        first = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        committed = [await consumer.committed(tp) or 0 for tp in partitions]
        return sum(ends.values()) - sum(first.values()), sum(committed), sum(ends.values())
    finally:
        await consumer.stop()


async def caught_up(group: ConsumerGroup) -> bool:
    _, committed, end = await offsets(group)
    return committed >= end


async def consumed_since_start(port: int, group: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
        text = (await client.get("/metrics")).text
    pattern = re.compile(
        rf'^events_consumed_total{{[^}}]*group="{re.escape(group)}"[^}}]*}} ([0-9.e+]+)$', re.M
    )
    return sum(float(v) for v in pattern.findall(text))


async def test_replaying_every_money_consumer_from_the_earliest_offset_changes_nothing() -> None:
    apps = {"account": (ACCOUNT_LEDGER_GROUP, ACCOUNT_USAGE_GROUP), "payment": (PAYMENT_CREDITS_GROUP,)}
    ports = {"account": 8101, "payment": 8103}
    for groups in apps.values():
        for group in groups:
            await eventually(lambda g=group: caught_up(g), timeout=60)
    before = await money_state()
    redis = create_redis(REDIS)
    for app, groups in apps.items():
        platform("stop-app", app)
        try:
            for group in groups:
                await reset_to_earliest(kafka_access(OPS), group.name, [t.name for t in group.topics])
                # As if Redis had lost its data too: the store alone must stop the replay.
                forgotten = [key async for key in redis.scan_iter(match=f"inbox:{group.name}:*")]
                if forgotten:
                    await redis.delete(*forgotten)
        finally:
            platform("start-app")
    await redis.aclose()
    for app, group, port in ((a, g, ports[a]) for a, gs in apps.items() for g in gs):
        # A replay is settled carefully (each event looked up in the journal); the two account
        # lanes take turns at it: minutes for a platform that holds more than the suite's events.
        await eventually(lambda g=group: caught_up(g), timeout=300)
        records, _, _ = await offsets(group)
        assert await consumed_since_start(port, group.name) >= records, f"{app} did not replay its topics"
    assert await money_state() == before


async def test_the_money_invariants_hold_after_the_whole_suite() -> None:
    # Top-ups of the last seconds may still be on their way: give them a moment.
    result = await eventually(lambda: ledger_check()[0] == 0, timeout=60, interval=5)
    code, output = ledger_check()
    assert result and code == 0, output
