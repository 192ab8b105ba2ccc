"""Bad input gets a clear 4xx with a message: never a 500, never a partial write."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .conftest import client_from, header_login

RATE_LIMIT_EXEMPT = "127.0.0.3"  # RATE_LIMIT_EXEMPT_CIDRS of the local gateway

pytestmark = pytest.mark.e2e

BAD_AUTH_REQUESTS = [
    ("POST", "/api/v1/auth/otp", b"{not json", 422),
    ("POST", "/api/v1/auth/otp", b"[]", 422),
    ("POST", "/api/v1/auth/otp", b'{"msisdn": 84901234567}', 422),
    ("POST", "/api/v1/auth/otp", b'{"msisdn": "123"}', 422),
    ("POST", "/api/v1/auth/otp", b'{"msisdn": "+1 202 555 0100"}', 422),
    ("POST", "/api/v1/auth/otp", b'{"msisdn": "0901234567", "admin": true}', 422),
    ("POST", "/api/v1/auth/otp/verify", b'{"msisdn": "0901234567", "code": "12ab56"}', 422),
    ("POST", "/api/v1/auth/otp/verify", b'{"msisdn": "0901234567"}', 422),
    ("POST", "/api/v1/auth/password-login", b'{"msisdn": "0901234567", "password": ""}', 422),
    ("POST", "/api/v1/auth/refresh", b'{"refresh_token": "short"}', 422),
    ("GET", "/api/v1/auth/otp", b"", 405),
    ("GET", "/api/v1/nothing-here", b"", 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_AUTH_REQUESTS)
async def test_bad_requests_get_a_4xx_with_a_message(
    wifi: httpx.AsyncClient, method: str, path: str, body: bytes, status: int
) -> None:
    r = await wifi.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["message"], payload
    assert payload.get("request_id") == r.headers["X-Request-Id"]


async def test_the_message_names_the_field_and_the_problem(wifi: httpx.AsyncClient) -> None:
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": "12345"})
    assert "msisdn" in r.json()["message"] and "Vietnamese mobile number" in r.json()["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/me/charges", {"limit": "0"}),
        ("/api/v1/me/charges", {"limit": "1000"}),
        ("/api/v1/me/charges", {"limit": "ten"}),
        ("/api/v1/me/charges", {"kind": "mms"}),
        ("/api/v1/me/charges", {"cursor": "bm90LWEtY3Vyc29y"}),
        ("/api/v1/me/topups", {"cursor": "%%%"}),
        ("/api/v1/me/bills", {"status": "overdue"}),
    ],
)
async def test_bad_query_parameters_get_422(
    carrier: httpx.AsyncClient, subscriber: str, path: str, params: dict[str, str]
) -> None:
    r = await carrier.get(path, params=params, headers=await header_login(carrier, subscriber))
    assert r.status_code == 422, r.text
    assert r.json()["message"]


async def test_a_body_over_the_gateway_limit_is_refused_before_any_service(wifi: httpx.AsyncClient) -> None:
    r = await wifi.post("/api/v1/auth/otp", content=b'{"msisdn": "' + b"9" * 200_000 + b'"}')
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


async def test_a_weak_password_is_refused_and_nothing_is_stored(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.put("/api/v1/me/password", json={"password": "short"}, headers=auth)
    assert r.status_code == 422
    login = await carrier.post(
        "/api/v1/auth/password-login", json={"msisdn": subscriber, "password": "short"}
    )
    assert login.status_code == 401


async def test_five_hundred_failing_and_good_requests_interleaved_never_give_a_502(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    # A request that once escaped as a 500 made the service drop the connection the gateway
    # was about to reuse: the NEXT request, maybe someone else's, got a 502.
    auth = await header_login(carrier, subscriber)
    token = {"Authorization": auth["Authorization"]}
    failing = [
        ("POST", "/api/v1/auth/header-login", {"X-MSISDN": "84981234567"}, None),
        ("POST", "/api/v1/auth/otp", {"Content-Type": "application/json"}, b"{not json"),
        ("GET", "/api/v1/me/charges?limit=0", token, None),
        ("GET", "/api/v1/me/payments/NOPE-NOT-AN-ID", token, None),
        ("GET", "/api/v1/me/balances", {"Authorization": "Bearer not-a-token"}, None),
    ]
    statuses: list[int] = []
    async with client_from(RATE_LIMIT_EXEMPT) as exempt:  # 460 requests, beyond any client's rate
        for round_no in range(230):
            method, path, headers, body = failing[round_no % len(failing)]
            bad = await exempt.request(method, path, headers=headers, content=body)
            good = await exempt.get("/api/v1/me/balances", headers=token)
            statuses += [bad.status_code, good.status_code]
            assert 400 <= bad.status_code < 500 and good.status_code == 200, (round_no, bad.text, good.text)
    for _ in range(20):  # the carrier's path, whose foreign numbers were a 500, within its rate
        bad = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": "84981234567"})
        good = await carrier.get("/api/v1/me/balances", headers=auth)
        statuses += [bad.status_code, good.status_code]
        assert (bad.status_code, good.status_code) == (403, 200), bad.text
        await asyncio.sleep(0.25)
    assert 502 not in statuses and len(statuses) == 500
