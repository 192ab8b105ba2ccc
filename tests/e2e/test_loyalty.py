"""Kết Nối Dài Lâu through the gateway, as the app uses it: enrol, earn from a card top-up
(payment sandbox) once, transfer to another member, redeem for data (the account service
grants the bucket), storms of transfers and E-code claims, and one member's points out of
another's reach."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from servicekit.testing import eventually

from .conftest import OPS_HEADERS, header_login, provision
from .payments import APPROVED_VISA, pay, start_topup

pytestmark = pytest.mark.e2e
LOYALTY = "http://127.0.0.1:8104"


async def member(carrier: httpx.AsyncClient, msisdn: str) -> dict[str, str]:
    await provision(msisdn)
    auth = await header_login(carrier, msisdn)
    r = await carrier.post("/api/v1/me/loyalty/enroll", headers=auth)
    assert r.status_code == 201, r.text
    return auth


async def points(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await client.get("/api/v1/me/loyalty", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["points"])


async def top_up(carrier: httpx.AsyncClient, auth: dict[str, str], amount: int) -> str:
    r = await start_topup(carrier, auth, amount)
    assert r.status_code == 201, r.text
    await pay(r.json()["payment_url"], APPROVED_VISA)
    return str(r.json()["payment_id"])


async def earn(carrier: httpx.AsyncClient, auth: dict[str, str], amount: int) -> None:
    """A card top-up, and the points it earns (1 per 1,000 đ) arriving."""
    await top_up(carrier, auth, amount)
    await eventually(lambda: _has(carrier, auth, amount // 1000), timeout=30)


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"}


async def test_enrol_earn_once_transfer_and_redeem_for_a_data_bucket(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    alice, bob = new_number(), new_number()
    a, b = await member(carrier, alice), await member(carrier, bob)
    again = await carrier.post("/api/v1/me/loyalty/enroll", headers=a)
    assert again.status_code == 200  # enrolling twice is harmless
    assert again.json()["tier"] == "member"

    await earn(carrier, a, 200_000)  # 1 point per 1,000 đ
    await asyncio.sleep(1.5)  # a redelivery or the provider's repeated notification earns nothing more
    assert await points(carrier, a) == 200
    history = (await carrier.get("/api/v1/me/loyalty/history", headers=a)).json()["items"]
    assert [(h["kind"], h["points"]) for h in history if h["points"]] == [("earn", 200)]
    assert sum(h["points"] for h in history) == 200

    sent = await carrier.post(
        "/api/v1/me/loyalty/transfers", json={"to_msisdn": "0" + bob[2:], "points": 60}, headers=a | key()
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["balance_after"] == 140
    assert await points(carrier, b) == 60
    assert [
        h["kind"] for h in (await carrier.get("/api/v1/me/loyalty/history", headers=b)).json()["items"]
    ] == [
        "transfer_in",
        "enroll",
    ]

    redeemed = await carrier.post(
        "/api/v1/me/loyalty/redemptions", json={"catalog_code": "DATA-1GB-1D"}, headers=a | key()
    )
    assert redeemed.status_code == 202, redeemed.text
    rid = redeemed.json()["redemption_id"]
    assert await points(carrier, a) == 90

    async def bucket() -> bool:
        balances = (await carrier.get("/api/v1/me/balances", headers=a)).json()
        return any(rid in d["id"] for d in balances.get("data", []))

    await eventually(bucket, timeout=30)
    await eventually(lambda: _granted(carrier, a, rid), timeout=15)
    assert await points(carrier, a) == 90


async def _has(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await points(client, auth) >= expected


async def _granted(client: httpx.AsyncClient, auth: dict[str, str], rid: str) -> bool:
    r = await client.get(f"/api/v1/me/loyalty/redemptions/{rid}", headers=auth)
    return bool(r.json()["status"] == "granted")


async def test_a_storm_of_transfers_from_one_member_conserves_points(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    alice, bob = new_number(), new_number()
    a, b = await member(carrier, alice), await member(carrier, bob)
    await earn(carrier, a, 300_000)

    async def send() -> httpx.Response:
        return await carrier.post(
            "/api/v1/me/loyalty/transfers", json={"to_msisdn": bob, "points": 20}, headers=a | key()
        )

    answers = await asyncio.gather(*(send() for _ in range(50)))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {201, 422, 429, 503}, statuses
    moved = 20 * statuses.count(201)
    assert statuses.count(201) <= 15  # 300 points: at most 15 transfers of 20
    assert all(r.json()["error"] == "insufficient_points" for r in answers if r.status_code == 422)
    assert (await points(carrier, a), await points(carrier, b)) == (300 - moved, moved)


async def test_bad_transfers_get_a_clear_4xx_and_change_nothing(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    alice, bob, stranger = new_number(), new_number(), new_number()
    a = await member(carrier, alice)
    await member(carrier, bob)
    await provision(stranger)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"to_msisdn": alice, "points": 10}, 422, "transfer_to_self"),
        ({"to_msisdn": stranger, "points": 10}, 422, "recipient_not_member"),
        ({"to_msisdn": bob, "points": 0}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": -5}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": 1.5}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": "10"}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": 10**30}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": 10}, 422, "insufficient_points"),
        ({"to_msisdn": "12345", "points": 10}, 422, "invalid_request"),
        ({"to_msisdn": bob, "points": 10, "from_msisdn": bob}, 422, "invalid_request"),
    ]
    for body, status, error in cases:
        r = await carrier.post("/api/v1/me/loyalty/transfers", json=body, headers=a | key())
        assert (r.status_code, r.json()["error"]) == (status, error), (body, r.text)
    no_key = await carrier.post(
        "/api/v1/me/loyalty/transfers", json={"to_msisdn": bob, "points": 10}, headers=a
    )
    assert no_key.status_code == 400
    history = (await carrier.get("/api/v1/me/loyalty/history", headers=a)).json()["items"]
    assert [h["kind"] for h in history] == ["enroll"]


async def test_one_member_cannot_read_or_spend_another_members_points(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    alice, mallory = new_number(), new_number()
    a, m = await member(carrier, alice), await member(carrier, mallory)
    await earn(carrier, a, 100_000)
    redeemed = await carrier.post(
        "/api/v1/me/loyalty/redemptions", json={"catalog_code": "DATA-1GB-1D"}, headers=a | key()
    )
    assert redeemed.status_code == 202, redeemed.text
    rid = redeemed.json()["redemption_id"]
    theirs = await carrier.get(f"/api/v1/me/loyalty/redemptions/{rid}", headers=m)
    assert theirs.status_code == 404
    # Mallory's token speaks for Mallory only, whatever the headers or the body say.
    spoofed = m | {"X-MSISDN": alice}
    assert (await carrier.get("/api/v1/me/loyalty", headers=spoofed)).json()["msisdn"] == mallory
    r = await carrier.post(
        "/api/v1/me/loyalty/transfers", json={"to_msisdn": alice, "points": 50}, headers=spoofed | key()
    )
    assert (r.status_code, r.json()["error"]) == (422, "insufficient_points")
    assert await points(carrier, a) == 50
    unauthenticated = await carrier.get("/api/v1/me/loyalty")
    assert unauthenticated.status_code == 401


async def test_an_ecode_storm_hands_out_each_code_once(carrier: httpx.AsyncClient, new_number: Any) -> None:
    offer = f"E2E-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    codes = [f"{offer}-{i:03d}" for i in range(5)]
    async with httpx.AsyncClient(base_url=LOYALTY, trust_env=False) as internal:
        r = await internal.put(
            f"/internal/v1/loyalty/offers/{offer}",
            headers=OPS_HEADERS,
            json={
                "partner": "Quán Test",
                "category": "restaurant",
                "title": "Giảm 10%",
                "valid_from": (now - timedelta(days=1)).isoformat(),
                "valid_to": (now + timedelta(days=30)).isoformat(),
                "codes": codes,
            },
        )
        assert r.status_code == 200, r.text
    members = [await member(carrier, new_number()) for _ in range(8)]
    listed = (await carrier.get("/api/v1/loyalty/offers")).json()["items"]
    assert any(o["offer_id"] == offer and o["pool_size"] == 5 for o in listed)

    async def claim(auth: dict[str, str]) -> httpx.Response:
        return await carrier.post(f"/api/v1/me/loyalty/offers/{offer}/ecode", headers=auth)

    answers = await asyncio.gather(*(claim(auth) for auth in members for _ in range(2)))
    handed = [r.json()["code"] for r in answers if r.status_code in (200, 201)]
    assert len(set(handed)) == 5
    assert sorted(set(handed)) == codes
    assert {r.json()["error"] for r in answers if r.status_code >= 400} <= {"sold_out", "request_in_progress"}
    mine = [
        (await carrier.get("/api/v1/me/loyalty/ecodes", headers=auth)).json()["items"] for auth in members
    ]
    assert sorted(c["code"] for items in mine for c in items if c["offer_id"] == offer) == codes


async def test_membership_card_requests_and_history_paging(
    carrier: httpx.AsyncClient, new_number: Any
) -> None:
    number = new_number()
    await provision(number)
    auth = await header_login(carrier, number)
    assert (await carrier.get("/api/v1/me/loyalty", headers=auth)).json()["error"] == "not_a_member"
    assert (
        await carrier.post("/api/v1/me/loyalty/card-requests", headers=auth | key(), json={})
    ).status_code == 422
    enrolled = await carrier.post("/api/v1/me/loyalty/enroll", headers=auth)
    assert enrolled.status_code == 201
    assert enrolled.json()["privileges"]
    address = {
        "recipient_name": "Trần Thị B",
        "phone": "0901234567",
        "street": "12 Nguyễn Huệ",
        "ward": "Bến Nghé",
        "district": "Quận 1",
        "province": "TP Hồ Chí Minh",
    }
    same = key()
    first = await carrier.post(
        "/api/v1/me/loyalty/card-requests", json={"address": address}, headers=auth | same
    )
    again = await carrier.post(
        "/api/v1/me/loyalty/card-requests", json={"address": address}, headers=auth | same
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert first.json()["address"]["phone"] == "84901234567"
    other = await carrier.post(
        "/api/v1/me/loyalty/card-requests", json={"address": address}, headers=auth | key()
    )
    assert (other.status_code, other.json()["error"]) == (409, "card_request_open")
    listed = (await carrier.get("/api/v1/me/loyalty/card-requests", headers=auth)).json()["items"]
    assert [c["status"] for c in listed] == ["received"]
    page = await carrier.get("/api/v1/me/loyalty/history", params={"limit": 1}, headers=auth)
    assert page.json()["next_before"] is None
    assert [h["kind"] for h in page.json()["items"]] == ["enroll"]
    bad = await carrier.get("/api/v1/me/loyalty/history", params={"limit": 1000}, headers=auth)
    assert bad.status_code == 422
