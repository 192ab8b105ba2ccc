"""A number that changes hands, end to end through the gateway with the real services (account,
payment, loyalty, notify, stores, VAS; none played here): the previous owner uses the number fully,
operations record a new owner, and the new owner sees nothing of the old one, inherits no
balance, and none of their pushes reaches the old phone. Replaying the lifecycle event (as an
offset reset would) and repeating the provisioning request change nothing."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from mobi_contracts import parse_event
from mobi_contracts.events.subscriber import SubscriberOwnerChanged
from mobi_contracts.topics import CONSUMER_GROUPS, SUBSCRIBER_LIFECYCLE
from servicekit.redis_client import create_redis
from servicekit.testing import REDIS, eventually, kafka_client_options

from .conftest import header_login, provision
from .payments import APPROVED_VISA, pay, start_topup
from .test_notify_e2e import PUSH, deliveries
from .test_vas import renewal_pass, subscribe

pytestmark = pytest.mark.e2e
OFFER = "HIGHLANDS-20"  # a seeded partner offer for every tier
ADDRESS = {
    "recipient_name": "Nguyễn Văn Cũ",
    "phone": "0901234567",
    "street": "12 Nguyễn Huệ",
    "ward": "Bến Nghé",
    "district": "Quận 1",
    "province": "TP Hồ Chí Minh",
}


async def get(client: httpx.AsyncClient, path: str, auth: dict[str, str]) -> Any:
    r = await client.get(path, headers=auth)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


async def top_up(client: httpx.AsyncClient, auth: dict[str, str], amount: int) -> str:
    started = await start_topup(client, auth, amount)
    assert started.status_code == 201, started.text
    await pay(started.json()["payment_url"], APPROVED_VISA)
    return str(started.json()["payment_id"])


async def main_balance(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    balances: dict[str, Any] = await get(client, "/api/v1/me/balances", auth)
    return balances


async def register_phone(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    token = secrets.token_hex(32)
    r = await client.post("/api/v1/me/devices", json={"platform": "apns", "token": token}, headers=auth)
    assert r.status_code == 201, r.text
    return token


async def previous_owners_life(carrier: httpx.AsyncClient, number: str) -> dict[str, Any]:
    """The first owner: a phone registered, a top-up (its receipt pushed), loyalty with points,
    an E-code and a member card to a home address, a complaint filed."""
    auth = await header_login(carrier, number)
    phone = await register_phone(carrier, auth)
    r = await carrier.put("/api/v1/me/notification-preferences", json={"language": "en"}, headers=auth)
    assert r.status_code == 200, r.text
    assert (await carrier.post("/api/v1/me/loyalty/enroll", headers=auth)).status_code == 201
    payment_id = await top_up(carrier, auth, 100_000)

    async def credited_and_earned() -> bool:
        loyalty = await get(carrier, "/api/v1/me/loyalty", auth)
        return (await main_balance(carrier, auth))["main"]["balance_vnd"] == 100_000 and loyalty[
            "points"
        ] >= 100

    await eventually(credited_and_earned, timeout=30, interval=0.3)
    code = await carrier.post(f"/api/v1/me/loyalty/offers/{OFFER}/ecode", headers=auth)
    assert code.status_code == 201, code.text
    key = {"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"}
    card = await carrier.post(
        "/api/v1/me/loyalty/card-requests", json={"address": ADDRESS}, headers=auth | key
    )
    assert card.status_code == 201, card.text
    complaint = {"category": "billing", "text": "Tôi bị trừ tiền sai, địa chỉ 12 Nguyễn Huệ"}
    assert (await carrier.post("/api/v1/me/feedback", json=complaint, headers=auth)).status_code == 201
    async with httpx.AsyncClient(base_url=PUSH, trust_env=False) as push:
        # The top-up's receipt and the E-code's notice.
        await eventually(lambda: _delivered(push, phone, 2), timeout=20, interval=0.3)
        await previous_owners_vas(carrier, auth, number)
        pushes = await settled_pushes(push, phone)
    return {
        "auth": auth,
        "phone": phone,
        "payment_id": payment_id,
        "code": code.json()["code"],
        "pushes": pushes,
    }


async def previous_owners_vas(carrier: httpx.AsyncClient, auth: dict[str, str], number: str) -> None:
    """The first owner subscribes to a VAS in the app and confirms it (charged), and buys a data
    pack that renews by itself (its bucket in the balances)."""
    sid = (await subscribe(carrier, auth, "MCLIP"))["id"]
    r = await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    assert r.status_code == 200, r.text
    key = {"Idempotency-Key": f"pack-{uuid.uuid4().hex}"}
    r = await carrier.post("/api/v1/me/vas/packs/D15/buy", headers=auth | key)
    assert r.status_code == 201, r.text

    async def both_running() -> bool:
        running = (await get(carrier, "/api/v1/me/vas", auth))["items"]
        charged = [c for c in (await get(carrier, "/api/v1/me/charges", auth))["items"] if c["kind"] == "vas"]
        return {s["code"] for s in running} == {"MCLIP", "D15"} and len(charged) == 2

    await eventually(both_running, timeout=30, interval=0.3)


async def new_owner_sees_no_vas(carrier: httpx.AsyncClient, auth: dict[str, str], number: str) -> None:
    """The previous owner's subscription and pack are neither shown to the new owner nor ever
    renewed on the new owner's balance (a renewal pass run days later charges nothing)."""
    assert (await get(carrier, "/api/v1/me/vas?all=true", auth))["items"] == []
    assert (await get(carrier, "/api/v1/me/vas/consents", auth))["items"] == []
    before = (await main_balance(carrier, auth))["main"]["balance_vnd"]
    later = datetime.now(UTC) + timedelta(days=3, minutes=1)
    stats = await renewal_pass(number, later)
    assert not stats.get("charged"), stats
    await asyncio.sleep(1)  # a charge, had one been requested, would have reached the ledger by now
    assert (await main_balance(carrier, auth))["main"]["balance_vnd"] == before
    assert [c for c in (await get(carrier, "/api/v1/me/charges", auth))["items"] if c["kind"] == "vas"] == []


async def settled_pushes(push: httpx.AsyncClient, token: str) -> int:
    """The phone's push count once nothing more arrives for two seconds."""
    last = -1
    while True:
        now = (await deliveries(push, [token]))[token]
        if now == last:
            return now
        last = now
        await asyncio.sleep(2)


async def _delivered(push: httpx.AsyncClient, token: str, expected: int) -> bool:
    return (await deliveries(push, [token]))[token] == expected


async def assert_nothing_of_the_previous_owner(
    carrier: httpx.AsyncClient, auth: dict[str, str], old: dict[str, Any], new_phone: bool = False
) -> None:
    assert (await get(carrier, "/api/v1/me/feedback", auth))["items"] == []
    devices = (await get(carrier, "/api/v1/me/devices", auth))["items"]
    assert len(devices) == (1 if new_phone else 0), devices
    assert (await get(carrier, "/api/v1/me/notification-preferences", auth))["language"] is None
    loyalty = await carrier.get("/api/v1/me/loyalty", headers=auth)
    assert (loyalty.status_code, loyalty.json()["error"]) == (404, "not_a_member")
    assert (await carrier.get("/api/v1/me/loyalty/history", headers=auth)).status_code == 404
    assert (await get(carrier, "/api/v1/me/loyalty/ecodes", auth))["items"] == []
    assert (await get(carrier, "/api/v1/me/loyalty/card-requests", auth))["items"] == []
    topups = (await get(carrier, "/api/v1/me/topups", auth))["items"]
    assert [t["payment_id"] for t in topups if t["payment_id"] == old["payment_id"]] == []
    assert (await get(carrier, "/api/v1/me/charges", auth))["items"] == []
    payment = await carrier.get(f"/api/v1/me/payments/{old['payment_id']}", headers=auth)
    assert payment.status_code == 404


async def lifecycle_records(number: str) -> list[Any]:
    """The number's records on the lifecycle topic, from its start to its current end."""
    partitions = [
        TopicPartition(SUBSCRIBER_LIFECYCLE.name, p) for p in range(SUBSCRIBER_LIFECYCLE.partitions)
    ]
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **kafka_client_options())
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [r for r in records if r.key == number.encode()]
        return found
    finally:
        await consumer.stop()


async def caught_up_on_lifecycle() -> bool:
    """Every group reading the lifecycle topic has committed up to its end."""
    partitions = [
        TopicPartition(SUBSCRIBER_LIFECYCLE.name, p) for p in range(SUBSCRIBER_LIFECYCLE.partitions)
    ]
    for group in (g for g in CONSUMER_GROUPS if SUBSCRIBER_LIFECYCLE in g.topics):
        consumer = AIOKafkaConsumer(group_id=group.name, enable_auto_commit=False, **kafka_client_options())
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                if (await consumer.committed(tp) or 0) < ends[tp]:
                    return False
        finally:
            await consumer.stop()
    return True


async def replay(record: Any) -> None:
    """The lifecycle event delivered again, as after an offset reset: the consumers' Redis
    inboxes forget it first, so it reaches every handler."""
    event_id = str(parse_event(record.value).event_id)
    redis = create_redis(REDIS)
    try:
        async for key in redis.scan_iter(match="inbox:*", count=1000):
            await redis.srem(key, event_id)
    finally:
        await redis.aclose()
    producer = AIOKafkaProducer(acks="all", **kafka_client_options("account-service"))
    await producer.start()
    try:
        await producer.send_and_wait(
            SUBSCRIBER_LIFECYCLE.name, record.value, key=record.key, headers=list(record.headers)
        )
    finally:
        await producer.stop()


async def test_a_recycled_number_shows_the_new_owner_nothing_of_the_old_and_pushes_nothing_to_the_old_phone(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    number = new_number()
    await provision(number, name="Nguyễn Văn Cũ")
    old = await previous_owners_life(carrier, number)

    await provision(number, name="Trần Thị Mới")  # operations record the new owner
    assert (await carrier.get("/api/v1/me", headers=old["auth"])).status_code == 401
    auth = await header_login(carrier, number)
    # From the token alone, before any service has consumed the change:
    await assert_nothing_of_the_previous_owner(carrier, auth, old)

    async def nothing_inherited() -> bool:
        balances = await main_balance(carrier, auth)
        return balances["main"]["balance_vnd"] == 0 and balances["promotions"] == [] == balances["data"]

    await eventually(nothing_inherited, timeout=30, interval=0.3)
    phone = await register_phone(carrier, auth)
    await top_up(carrier, auth, 50_000)
    async with httpx.AsyncClient(base_url=PUSH, trust_env=False) as push:
        await eventually(lambda: _delivered(push, phone, 1), timeout=20, interval=0.3)
        await eventually(caught_up_on_lifecycle, timeout=30, interval=0.5)
        assert (await deliveries(push, [old["phone"]]))[old["phone"]] == old["pushes"], (
            "only the first owner's"
        )
        assert (await main_balance(carrier, auth))["main"]["balance_vnd"] == 50_000
        await new_owner_sees_no_vas(carrier, auth, number)

        # The same provisioning again changes nothing; replaying its event changes nothing.
        await provision(number, name="Trần Thị Mới")
        [changed] = [r for r in await lifecycle_records(number)]
        event = parse_event(changed.value)
        assert isinstance(event, SubscriberOwnerChanged) and event.data.status == "active"
        await replay(changed)
        await eventually(caught_up_on_lifecycle, timeout=30, interval=0.5)
        await asyncio.sleep(1)  # whatever the replay would push, it would have by now
        assert (await main_balance(carrier, auth))["main"]["balance_vnd"] == 50_000
        assert [d["id"] for d in (await get(carrier, "/api/v1/me/devices", auth))["items"]]
        assert (await deliveries(push, [phone, old["phone"]])) == {phone: 1, old["phone"]: old["pushes"]}
    await assert_nothing_of_the_previous_owner(carrier, auth, old, new_phone=True)
