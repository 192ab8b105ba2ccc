"""Notify through the gateway, with campaigns produced on Kafka as an outside team would and
the push sandbox playing FCM and APNs."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from servicekit.internal_keys import caller_headers
from servicekit.testing import eventually, kafka_client_options

from .conftest import header_login, provision
from .payments import APPROVED_VISA, pay, start_topup

ROOT = Path(__file__).resolve().parents[2]
NOTIFY = os.environ.get("NOTIFY_URL", "http://127.0.0.1:8105")
PUSH = os.environ.get("PUSH_SANDBOX_URL", "http://127.0.0.1:8193")
MONGODB = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
CAMPAIGN_TOOLS = caller_headers("campaign-tools", os.environ.get("CAMPAIGN_TOOLS_INTERNAL_KEY") or None)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def push() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=PUSH, timeout=15.0, trust_env=False) as client:
        yield client
        await client.post("/sandbox/faults", json={"delay_ms": 0, "rate_limited": 0, "server_errors": 0})


async def subscriber_with_device(
    carrier: httpx.AsyncClient, number: str, platform: str = "apns", locale: str = "vi-VN"
) -> tuple[dict[str, str], str]:
    await provision(number)
    auth = await header_login(carrier, number)
    token = secrets.token_hex(32) if platform == "apns" else f"fcm-{secrets.token_urlsafe(60)}"
    r = await carrier.post(
        "/api/v1/me/devices", json={"platform": platform, "token": token, "locale": locale}, headers=auth
    )
    assert r.status_code == 201, r.text
    return auth, token


def campaign(audience: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    pid = f"e2e-{uuid.uuid4().hex[:12]}"
    return {
        "promotion_id": pid,
        "title": {"vi": "Ưu đãi dành cho bạn", "en": "An offer for you"},
        "body": {"vi": "Nhân đôi data", "en": "Double data"},
        "deep_link": "mymobifone://offers",
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "audience": audience,
    } | overrides


async def produce(data: dict[str, Any] | None, key: str, raw: bytes | None = None) -> None:
    """A campaign team's plain Kafka producer: the documented envelope, keyed by promotion id."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "event_type": "PromotionPublished",
        "event_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "campaign-tools",
        "correlation_id": f"campaign-{key}",
        "data": data,
    }
    producer = AIOKafkaProducer(acks="all", **kafka_client_options("campaign-tools"))
    await producer.start()
    try:
        await producer.send_and_wait("promotions.v1", raw or json.dumps(envelope).encode(), key=key.encode())
    finally:
        await producer.stop()


async def stats(pid: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=NOTIFY, trust_env=False, timeout=10) as client:
        r = await client.get(f"/internal/v1/promotions/{pid}/stats", headers=CAMPAIGN_TOOLS)
        return r.json() if r.status_code == 200 else None


async def finished(pid: str, timeout: float = 30) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        s = await stats(pid)
        return s if s and s["state"] == "done" else None

    result: dict[str, Any] = await eventually(done, timeout=timeout, interval=0.3)
    return result


async def deliveries(
    push: httpx.AsyncClient, tokens: list[str], collapse_id: str | None = None
) -> dict[str, int]:
    r = await push.post("/sandbox/deliveries", json={"tokens": tokens, "collapse_id": collapse_id})
    return {t: v["deliveries"] for t, v in r.json().items()}


async def listed(client: httpx.AsyncClient, auth: dict[str, str], promotion_id: str) -> bool:
    items = (await client.get("/api/v1/me/promotions", headers=auth)).json()["items"]
    return promotion_id in [i["id"] for i in items]


async def test_devices_and_preferences_belong_to_their_subscriber(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    alice, _ = await subscriber_with_device(carrier, new_number())
    bob, _ = await subscriber_with_device(carrier, new_number())
    [device] = (await carrier.get("/api/v1/me/devices", headers=alice)).json()["items"]
    assert (await carrier.delete(f"/api/v1/me/devices/{device['id']}", headers=bob)).status_code == 404
    bad = await carrier.post(
        "/api/v1/me/devices", json={"platform": "apns", "token": "z" * 64}, headers=alice
    )
    assert bad.status_code == 422 and "valid apns token" in bad.json()["message"]

    prefs = {"marketing_opt_out": True, "quiet_hours": {"start": "22:00", "end": "07:00"}, "language": "en"}
    r = await carrier.put("/api/v1/me/notification-preferences", json=prefs, headers=alice)
    assert r.status_code == 200 and r.json()["quiet_hours"]["timezone"] == "Asia/Ho_Chi_Minh"
    assert (await carrier.get("/api/v1/me/notification-preferences", headers=bob)).json()[
        "marketing_opt_out"
    ] is False
    wrong = await carrier.put(
        "/api/v1/me/notification-preferences",
        json={"quiet_hours": {"start": "25:00", "end": "07:00"}},
        headers=bob,
    )
    assert wrong.status_code == 422

    assert (await carrier.delete(f"/api/v1/me/devices/{device['id']}", headers=alice)).status_code == 204
    assert (await carrier.get("/api/v1/me/devices", headers=alice)).json()["items"] == []


async def test_a_campaign_from_a_plain_kafka_producer_reaches_exactly_its_audience(
    carrier: httpx.AsyncClient, push: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    a_number, b_number, c_number = new_number(), new_number(), new_number()
    a_auth, a_ios = await subscriber_with_device(carrier, a_number)
    r = await carrier.post(
        "/api/v1/me/devices",
        json={"platform": "fcm", "token": f"fcm-{secrets.token_urlsafe(60)}", "locale": "en-US"},
        headers=a_auth,
    )
    a_android = (await carrier.get("/api/v1/me/devices", headers=a_auth)).json()["items"]
    assert r.status_code == 201 and len(a_android) == 2
    _, b_token = await subscriber_with_device(carrier, b_number, platform="fcm")
    c_auth, c_token = await subscriber_with_device(carrier, c_number)

    over_h2 = (await push.get("/sandbox/stats")).json()["http_versions"].get("2", 0)
    promo = campaign({"msisdns": [a_number, b_number]})
    await produce(promo, promo["promotion_id"])
    result = await finished(promo["promotion_id"])
    assert (result["targeted"], result["sent"], result["failed"]) == (3, 3, 0)
    # The adapters speak HTTP/2, as FCM HTTP v1 and APNs require.
    assert (await push.get("/sandbox/stats")).json()["http_versions"].get("2", 0) >= over_h2 + 3

    counts = await deliveries(push, [a_ios, b_token, c_token], promo["promotion_id"])
    assert counts == {a_ios: 1, b_token: 1, c_token: 0}
    # The inbox resolves listed promotions, re-read every INBOX_CACHE_SECONDS (2 s).
    await eventually(lambda: listed(carrier, a_auth, promo["promotion_id"]), timeout=10)
    inbox = (await carrier.get("/api/v1/me/promotions", headers=a_auth)).json()
    assert [(i["id"], i["read"]) for i in inbox["items"]][:1] == [(promo["promotion_id"], False)]
    assert promo["promotion_id"] not in [
        i["id"] for i in (await carrier.get("/api/v1/me/promotions", headers=c_auth)).json()["items"]
    ]
    read = await carrier.post(f"/api/v1/me/promotions/{promo['promotion_id']}/read", headers=a_auth)
    assert read.status_code == 204
    items = (await carrier.get("/api/v1/me/promotions", headers=a_auth)).json()["items"]
    assert next(i for i in items if i["id"] == promo["promotion_id"])["read"] is True
    not_mine = await carrier.post(f"/api/v1/me/promotions/{promo['promotion_id']}/read", headers=c_auth)
    assert not_mine.status_code == 404


async def test_opt_out_and_quiet_hours_hold_marketing_pushes_back_but_not_the_inbox(
    carrier: httpx.AsyncClient, push: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    out_number, quiet_number = new_number(), new_number()
    out_auth, out_token = await subscriber_with_device(carrier, out_number)
    quiet_auth, quiet_token = await subscriber_with_device(carrier, quiet_number)
    await carrier.put(
        "/api/v1/me/notification-preferences", json={"marketing_opt_out": True}, headers=out_auth
    )
    now_local = datetime.now(UTC) + timedelta(hours=7)
    start, end = now_local - timedelta(minutes=5), now_local + timedelta(hours=1)
    window = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    r = await carrier.put(
        "/api/v1/me/notification-preferences", json={"quiet_hours": window}, headers=quiet_auth
    )
    assert r.status_code == 200, r.text

    promo = campaign({"msisdns": [out_number, quiet_number]})
    await produce(promo, promo["promotion_id"])
    result = await finished(promo["promotion_id"])
    assert (result["opted_out"], result["deferred"], result["sent"], result["deferred_waiting"]) == (
        1,
        1,
        0,
        1,
    )
    assert await deliveries(push, [out_token, quiet_token]) == {out_token: 0, quiet_token: 0}
    for auth in (out_auth, quiet_auth):
        await eventually(lambda a=auth: listed(carrier, a, promo["promotion_id"]), timeout=10)


async def test_an_invalid_campaign_is_dead_lettered_with_its_reason_and_the_next_one_goes_out(
    carrier: httpx.AsyncClient, push: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    number = new_number()
    _, token = await subscriber_with_device(carrier, number)
    bad = campaign({})  # an audience that names nobody
    good = campaign({"msisdns": [number]})
    await produce(bad, bad["promotion_id"])
    await produce(good, good["promotion_id"])
    await finished(good["promotion_id"])
    assert await deliveries(push, [token]) == {token: 1}

    consumer = AIOKafkaConsumer("dlq.notify-service", auto_offset_reset="earliest", **kafka_client_options())
    await consumer.start()
    try:

        async def dead_letter() -> dict[str, str] | None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == bad["promotion_id"].encode():
                        return {k: v.decode() for k, v in record.headers}
            return None

        headers = await eventually(dead_letter, timeout=20, interval=0)
    finally:
        await consumer.stop()
    assert headers["dlq-reason"] == "malformed"
    assert "audience names nobody" in headers["dlq-error"]
    assert await stats(bad["promotion_id"]) is None


async def test_a_card_topup_pushes_a_receipt_to_the_payers_device(
    carrier: httpx.AsyncClient, push: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    auth, token = await subscriber_with_device(carrier, new_number())
    started = await start_topup(carrier, auth, 50_000)
    assert started.status_code == 201, started.text
    await pay(started.json()["payment_url"], APPROVED_VISA)

    async def receipt() -> bool:
        return (await deliveries(push, [token]))[token] == 1

    await eventually(receipt, timeout=20, interval=0.3)
    await asyncio.sleep(1)  # a second push would have come by now
    assert (await deliveries(push, [token]))[token] == 1


async def campaign_interrupted(push: httpx.AsyncClient, interrupt: Callable[[], None]) -> dict[str, int]:
    """A 300-device campaign, `interrupt`ed (notify stopped or killed) once some devices
    have their push, notify ready again; deliveries per token for the promotion.

    Devices are written straight to notify's store (300 registrations through the gateway
    would only test the rate limiter); the campaign and the interruption are real."""
    numbers = [f"8476{i:07d}" for i in range(secrets.randbelow(9_000_000), 10**7)][:300]
    tokens = {n: secrets.token_hex(32) for n in numbers}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB, tz_aware=True)
    try:
        from notify_service.directory import device_id_for
        from notify_service.domain.audience import bucket_of

        now = datetime.now(UTC)
        await client["notify_service"]["devices"].insert_many(
            [
                {
                    "_id": device_id_for("apns", t),
                    "msisdn": n,
                    "bucket": bucket_of(n),
                    "platform": "apns",
                    "token": t,
                    "locale": "vi",
                    "app_version": "5.0",
                    "registered_at": now,
                }
                for n, t in tokens.items()
            ]
        )
        await push.post("/sandbox/faults", json={"delay_ms": 40})
        promo = campaign({"msisdns": numbers})
        await produce(promo, promo["promotion_id"])

        async def some_delivered() -> bool:
            got = sum((await deliveries(push, list(tokens.values()))).values())
            return 0 < got < len(tokens) // 2

        await eventually(some_delivered, timeout=20, interval=0.05)
        interrupt()
        await push.post("/sandbox/faults", json={"delay_ms": 0})
        # The supervisor restarts it too; whichever comes first, it must come back ready.
        subprocess.run(
            [str(ROOT / "deploy/local/platform.sh"), "start", "notify"], capture_output=True, timeout=90
        )

        async def ready() -> bool:
            try:
                async with httpx.AsyncClient(base_url=NOTIFY, trust_env=False, timeout=3) as c:
                    return (await c.get("/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=60, interval=0.5)
        result = await finished(promo["promotion_id"], timeout=60)
        assert result["targeted"] >= len(tokens)
        return await deliveries(push, list(tokens.values()), promo["promotion_id"])
    finally:
        await client["notify_service"]["devices"].delete_many({"msisdn": {"$in": numbers}})
        await client.close()


def notify_pid() -> int:
    return int((ROOT / ".cache" / "run" / "notify.pid").read_text())


async def test_notify_stopped_mid_campaign_pushes_every_device_exactly_once(push: httpx.AsyncClient) -> None:
    """A deploy or scale-down (SIGTERM, as Kubernetes sends): the chunks in flight finish
    and are checkpointed before the process exits, so the restart resends nothing."""

    def stop() -> None:  # TERM to the process group, waiting for the exit (then KILL at 15 s)
        subprocess.run([str(ROOT / "deploy/local/platform.sh"), "stop-app", "notify"], timeout=60, check=True)

    counts = await campaign_interrupted(push, stop)
    assert sorted(set(counts.values())) == [1], {t: n for t, n in counts.items() if n != 1}


async def test_notify_killed_mid_campaign_misses_no_device(push: httpx.AsyncClient) -> None:
    """A crash (SIGKILL: OOM, a lost node): nothing is missed; only pushes in flight at the
    kill (the chunk each unit was on) can repeat, and the phone shows them once
    (apns-collapse-id = promotion id)."""
    from notify_service.fanout import UNITS_AT_ONCE
    from notify_service.settings import NotifySettings

    counts = await campaign_interrupted(push, lambda: os.kill(notify_pid(), signal.SIGKILL))
    assert min(counts.values()) == 1, "a device was missed"
    repeated = sum(counts.values()) - len(counts)
    assert repeated <= UNITS_AT_ONCE * NotifySettings().fanout_chunk
    print(f"notify killed mid-campaign: {repeated} of {len(counts)} pushes sent twice")
