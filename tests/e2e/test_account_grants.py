"""What the VAS and loyalty services ask of the account service, driven as the app drives it
(no service played on the bus) and observed as the app sees it through the gateway:
loyalty rewards of every kind are granted once each, even when the app retries; a plan
change made in the app shows in the account's profile and balances."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from servicekit.testing import eventually

from .cards import top_up
from .conftest import header_login

pytestmark = pytest.mark.e2e

REWARDS = {"AIRTIME-10K": 100, "DATA-1GB-1D": 50, "VAS-MCA-30D": 60}  # catalogue code: points


async def balances(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/me/balances", headers=auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def points(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await client.get("/api/v1/me/loyalty", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["points"])


async def redemption_status(client: httpx.AsyncClient, auth: dict[str, str], rid: str) -> str:
    r = await client.get(f"/api/v1/me/loyalty/redemptions/{rid}", headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


async def test_each_loyalty_reward_is_granted_once_even_when_the_app_retries_the_redemption(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    assert (await carrier.post("/api/v1/me/loyalty/enroll", headers=auth)).status_code == 201
    await top_up(carrier, auth, 300_000)  # 1 point per 1,000 đ
    await eventually(lambda: _at_least(carrier, auth, 300), timeout=30)
    rids = []
    for code in REWARDS:
        key = {"Idempotency-Key": f"grant-{uuid.uuid4().hex}"}
        first, retry = [
            await carrier.post(
                "/api/v1/me/loyalty/redemptions", json={"catalog_code": code}, headers=auth | key
            )
            for _ in range(2)
        ]
        assert first.status_code == 202, first.text
        assert (
            retry.status_code in (200, 202) and retry.json()["redemption_id"] == first.json()["redemption_id"]
        )
        rids.append(first.json()["redemption_id"])
    for rid in rids:
        await eventually(lambda: _is(carrier, auth, rid, "granted"), timeout=30)  # noqa: B023

    assert await points(carrier, auth) == 300 - sum(REWARDS.values())
    after = await balances(carrier, auth)
    assert after["main"]["balance_vnd"] == 300_000 + 10_000
    assert [d["total_mb"] for d in after["data"]] == [1024.0]
    vas = (await carrier.get("/api/v1/me/vas", headers=auth)).json()
    assert [s["code"] for s in vas["items"]] == ["MCA"]


async def test_a_plan_change_in_the_app_shows_in_the_profile_and_the_balances(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.post("/api/v1/me/plan", json={"plan_code": "Q263"}, headers=auth)
    assert r.status_code == 200, r.text

    async def shows() -> bool:
        return (await balances(carrier, auth)).get("plan_code") == "Q263"

    await eventually(shows, timeout=30)
    profile = (await carrier.get("/api/v1/me", headers=auth)).json()
    assert profile["plan"] == "prepaid"


async def _at_least(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await points(client, auth) >= expected


async def _is(client: httpx.AsyncClient, auth: dict[str, str], rid: str, status: str) -> bool:
    return await redemption_status(client, auth, rid) == status
