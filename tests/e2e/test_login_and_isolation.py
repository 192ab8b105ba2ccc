"""Logins and who can see what, through the gateway."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable

import httpx
import pytest

from .conftest import client_from, header_login, latest_code, provision, set_first_password, sms_count

pytestmark = pytest.mark.e2e


async def test_header_login_works_from_the_carrier_network(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})
    assert r.status_code == 200, r.text
    me = await carrier.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["msisdn"] == subscriber
    assert me.json()["login_method"] == "header"


async def test_the_same_header_from_the_internet_is_ignored(wifi: httpx.AsyncClient, subscriber: str) -> None:
    for headers in (
        {"X-MSISDN": subscriber},
        {"X-MSISDN": subscriber, "X-Forwarded-For": "127.0.0.2", "X-Real-IP": "127.0.0.2"},
        {"X-Up-Calling-Line-ID": subscriber, "X-Nokia-MSISDN": subscriber},
        # The account service's own key, known to the client: the gateway replaces it anyway.
        {"X-MSISDN": subscriber, "X-Gateway-Key": "local-gateway-key-account-service"},
    ):
        r = await wifi.post("/api/v1/auth/header-login", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == "not_on_carrier_network"


async def test_header_login_of_a_number_that_is_not_a_subscription_is_refused(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": new_number()})
    assert r.status_code == 403
    assert r.json()["error"] == "not_a_subscriber"


async def test_otp_login_end_to_end_with_the_code_from_the_sms_centre(
    wifi: httpx.AsyncClient, subscriber: str
) -> None:
    local = "0" + subscriber[2:]  # typed the way people type it
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": local})
    assert r.status_code == 202, r.text
    code = await latest_code(subscriber)
    r = await wifi.post("/api/v1/auth/otp/verify", json={"msisdn": local, "code": code})
    assert r.status_code == 200, r.text
    tokens = r.json()
    me = await wifi.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (me.json()["msisdn"], me.json()["login_method"]) == (subscriber, "otp")
    again = await wifi.post("/api/v1/auth/otp/verify", json={"msisdn": local, "code": code})
    assert again.status_code == 401, "a code works once"


async def test_concurrent_verifies_of_one_code_let_exactly_one_in(
    wifi: httpx.AsyncClient, subscriber: str
) -> None:
    await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
    code = await latest_code(subscriber)
    results = await asyncio.gather(
        *(wifi.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": code}) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in results)
    # The losers find the code used (401) or, past the five tries one client has, wait (429).
    assert statuses[0] == 200 and set(statuses[1:]) <= {401, 429}


async def test_wrong_codes_lock_out_the_guessing_client_but_not_the_owner(
    wifi: httpx.AsyncClient, subscriber: str
) -> None:
    await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
    code = await latest_code(subscriber)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [
        (await wifi.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": wrong})).json()
        for _ in range(5)
    ]
    assert [a["error"] for a in answers] == ["wrong_code"] * 4 + ["code_burnt"]
    r = await wifi.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": code})
    assert r.status_code == 429 and r.json()["error"] == "locked_out"
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    async with client_from(f"127.{random.randint(10, 250)}.0.{random.randint(1, 254)}") as owner:
        sent = await sms_count(subscriber)
        assert (await owner.post("/api/v1/auth/otp", json={"msisdn": subscriber})).status_code == 202
        fresh = await latest_code(subscriber, sent_before=sent)
        r = await owner.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": fresh})
        assert r.status_code == 200, "the owner, elsewhere, is not locked out by a stranger"


async def test_codes_cannot_be_requested_again_at_once(wifi: httpx.AsyncClient, subscriber: str) -> None:
    assert (await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})).status_code == 202
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
    assert r.status_code == 429 and r.json()["error"] == "resend_too_soon"


async def test_password_login_and_lockout_of_the_guessing_client(
    wifi: httpx.AsyncClient, carrier: httpx.AsyncClient, subscriber: str
) -> None:
    await set_first_password(carrier, subscriber, "correct horse 42")
    ok = await wifi.post(
        "/api/v1/auth/password-login", json={"msisdn": subscriber, "password": "correct horse 42"}
    )
    assert ok.status_code == 200, ok.text
    for _ in range(5):
        bad = await wifi.post(
            "/api/v1/auth/password-login", json={"msisdn": subscriber, "password": "wrong password"}
        )
    assert bad.status_code == 401
    locked = await wifi.post(
        "/api/v1/auth/password-login", json={"msisdn": subscriber, "password": "correct horse 42"}
    )
    assert locked.status_code == 429
    async with client_from(f"127.{random.randint(10, 250)}.1.{random.randint(1, 254)}") as owner:
        r = await owner.post(
            "/api/v1/auth/password-login", json={"msisdn": subscriber, "password": "correct horse 42"}
        )
        assert r.status_code == 200, "another client is not locked out"


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    wifi: httpx.AsyncClient, carrier: httpx.AsyncClient, subscriber: str
) -> None:
    first = (await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})).json()
    second = await wifi.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    reused = await wifi.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["error"] == "refresh_token_reused"
    me = await wifi.get("/api/v1/me", headers={"Authorization": f"Bearer {second.json()['access_token']}"})
    assert me.status_code == 401, "the whole session ended"


async def test_logout_ends_the_access_token_at_once(carrier: httpx.AsyncClient, subscriber: str) -> None:
    auth = await header_login(carrier, subscriber)
    assert (await carrier.post("/api/v1/auth/logout", headers=auth)).status_code == 204
    assert (await carrier.get("/api/v1/me/balances", headers=auth)).status_code == 401


async def test_a_token_for_one_subscriber_never_returns_anothers_data(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    a, b = new_number(), new_number()
    await provision(a)
    await provision(b, plan="postpaid")
    auth_a = await header_login(carrier, a)
    for path in (
        "/api/v1/me",
        "/api/v1/me/balances",
        "/api/v1/me/charges",
        "/api/v1/me/topups",
        "/api/v1/me/bills",
    ):
        r = await carrier.get(path, headers=auth_a)
        assert r.status_code == 200, (path, r.text)
        assert b not in r.text
    # Query parameters cannot point elsewhere either.
    r = await carrier.get(f"/api/v1/me/balances?msisdn={b}", headers=auth_a)
    assert r.json()["msisdn"] == a
    # A token whose subject was edited is rejected.
    token = auth_a["Authorization"].split()[1]
    head, claims, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=="))
    payload["sub"] = b
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    r = await carrier.get("/api/v1/me", headers={"Authorization": f"Bearer {head}.{forged}.{sig}"})
    assert r.status_code == 401


async def test_no_token_no_data(wifi: httpx.AsyncClient) -> None:
    for path in ("/api/v1/me", "/api/v1/me/balances", "/api/v1/me/topups"):
        r = await wifi.get(path)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"


# -- number portability: the subscriber directory decides, not the prefix --------------------------


async def test_a_number_ported_in_from_another_network_logs_in_by_header_and_by_otp(
    carrier: httpx.AsyncClient, wifi: httpx.AsyncClient
) -> None:
    ported_in = "8498" + f"{random.randrange(10**7):07d}"  # a Viettel range, now ours
    await provision(ported_in)
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": ported_in})
    assert r.status_code == 200, r.text
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": "0" + ported_in[2:]})
    assert r.status_code == 202, r.text
    code = await latest_code(ported_in)
    r = await wifi.post("/api/v1/auth/otp/verify", json={"msisdn": ported_in, "code": code})
    assert r.status_code == 200, r.text


async def test_a_number_ported_out_to_another_network_can_no_longer_log_in(
    carrier: httpx.AsyncClient, wifi: httpx.AsyncClient, subscriber: str
) -> None:
    await provision(subscriber, status="ported_out")  # one of our prefixes, now another operator's
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})
    assert (r.status_code, r.json()["error"]) == (403, "not_a_subscriber")
    before = await sms_count(subscriber)
    r = await wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
    assert r.status_code == 202  # the same answer as for anyone (no enumeration)...
    await asyncio.sleep(0.5)
    assert await sms_count(subscriber) == before  # ...but no code is sent


@pytest.mark.parametrize(
    ("header", "status", "error"),
    [
        ("84981234567", 403, "not_a_subscriber"),  # another network's number, not in our directory
        ("+12025550100", 400, "invalid_msisdn"),  # a number, but not a Vietnamese mobile one
        ("not-a-number", 401, "not_on_carrier_network"),  # the gateway passes only digits on
    ],
)
async def test_header_login_with_a_foreign_or_malformed_number_gets_a_clear_4xx(
    carrier: httpx.AsyncClient, header: str, status: int, error: str
) -> None:
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": header})
    assert (r.status_code, r.json()["error"]) == (status, error), r.text
    assert r.json()["message"]
