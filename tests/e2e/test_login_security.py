"""Sessions that end when they should and lock-outs nobody can turn against a subscriber,
through the gateway (the security review of issue 11, each point as it was reported)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx
import pytest
from redis.asyncio import Redis

from servicekit.internal_keys import caller_headers, local_key

from .conftest import (
    ACCOUNT,
    client_from,
    header_login,
    latest_code,
    provision,
    set_first_password,
    sms_count,
)

pytestmark = pytest.mark.e2e
EXEMPT = "127.0.0.3"  # RATE_LIMIT_EXEMPT_CIDRS: the gateway's own per-second limit stays out of the way


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def password_login(client: httpx.AsyncClient, msisdn: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/password-login", json={"msisdn": msisdn, "password": password})


async def forget_limits_of(client_key: str) -> None:
    """The exempt address is shared by runs of this suite; start from a clean slate."""
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    keys = [k async for k in redis.scan_iter(match=f"*{client_key}*", count=1000)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_header_login_session_cannot_set_a_password_without_proof(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.put("/api/v1/me/password", json={"password": "correct horse 42"}, headers=auth)
    assert (r.status_code, r.json()["error"]) == (403, "reauthentication_required")
    r = await carrier.put(
        "/api/v1/me/password", json={"password": "correct horse 42", "otp_code": "000000"}, headers=auth
    )
    assert r.status_code == 401
    login = await password_login(carrier, subscriber, "correct horse 42")
    assert login.status_code == 401, "no password was set"


async def test_changing_the_password_ends_every_other_session(
    carrier: httpx.AsyncClient, wifi: httpx.AsyncClient, subscriber: str
) -> None:
    await set_first_password(carrier, subscriber, "first password 1")
    other = (await password_login(wifi, subscriber, "first password 1")).json()
    mine = await header_login(carrier, subscriber)
    r = await carrier.put(
        "/api/v1/me/password",
        json={"password": "second password 2", "current_password": "first password 1"},
        headers=mine,
    )
    assert r.status_code == 200, r.text
    assert (await wifi.get("/api/v1/me", headers=bearer(other))).status_code == 401
    refreshed = await wifi.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refreshed.status_code == 401
    assert (
        await carrier.get("/api/v1/me", headers={"Authorization": mine["Authorization"]})
    ).status_code == 401
    assert (await carrier.get("/api/v1/me", headers=bearer(r.json()))).status_code == 200, (
        "the changer's new one"
    )
    old = await password_login(wifi, subscriber, "first password 1")
    assert old.status_code == 401


async def test_a_recycled_number_ends_the_previous_owners_sessions_and_password(
    carrier: httpx.AsyncClient, wifi: httpx.AsyncClient, subscriber: str
) -> None:
    await set_first_password(carrier, subscriber, "previous owner 1")
    session = (await password_login(wifi, subscriber, "previous owner 1")).json()
    await provision(subscriber, name="Chủ Mới")  # the number was recycled to a new owner
    assert (await wifi.get("/api/v1/me", headers=bearer(session))).status_code == 401
    r = await wifi.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert r.status_code == 401
    r = await password_login(wifi, subscriber, "previous owner 1")
    assert r.status_code == 401, "the previous owner's password is gone"


async def test_suspending_a_number_ends_its_sessions(
    carrier: httpx.AsyncClient, wifi: httpx.AsyncClient, subscriber: str
) -> None:
    tokens = (await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})).json()
    await provision(subscriber, status="suspended")
    assert (await wifi.get("/api/v1/me", headers=bearer(tokens))).status_code == 401
    r = await wifi.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_a_client_over_its_own_limit_cannot_use_up_a_numbers_codes(
    subscriber: str, new_number: Callable[[], str]
) -> None:
    async with client_from(EXEMPT) as stranger:
        await forget_limits_of(f"ip:{EXEMPT}")
        for _ in range(20):  # the client's own budget, spent on other numbers
            assert (await stranger.post("/api/v1/auth/otp", json={"msisdn": new_number()})).status_code == 202
        for _ in range(6):
            r = await stranger.post("/api/v1/auth/otp", json={"msisdn": subscriber})
            assert r.status_code == 429
        await forget_limits_of(f"ip:{EXEMPT}")
    async with client_from(f"127.{random.randint(10, 250)}.2.{random.randint(1, 254)}") as owner:
        sent = await sms_count(subscriber)
        assert (await owner.post("/api/v1/auth/otp", json={"msisdn": subscriber})).status_code == 202
        code = await latest_code(subscriber, sent_before=sent)
        r = await owner.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": code})
        assert r.status_code == 200, "refused requests counted for nobody"


async def test_twenty_parallel_wrong_passwords_get_five_tries(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    await set_first_password(carrier, subscriber, "correct horse 42")
    async with client_from(EXEMPT) as guesser:
        await forget_limits_of(f"ip:{EXEMPT}")
        answers = await asyncio.gather(
            *(password_login(guesser, subscriber, f"guess {i}") for i in range(20))
        )
        right = await password_login(guesser, subscriber, "correct horse 42")
        await forget_limits_of(f"ip:{EXEMPT}")
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 5 + [429] * 15
    assert right.status_code == 429, "the guesser stays locked out, even with the right password"


async def test_one_client_trying_a_password_on_many_numbers_is_stopped(
    new_number: Callable[[], str],
) -> None:
    async with client_from(EXEMPT) as guesser:
        await forget_limits_of(f"ip:{EXEMPT}")
        statuses = []
        for _ in range(22):
            r = await password_login(guesser, new_number(), "123456")
            statuses.append(r.status_code)
        await forget_limits_of(f"ip:{EXEMPT}")
    assert statuses == [401] * 20 + [429] * 2


async def test_each_internal_route_accepts_only_its_callers_each_with_its_own_key(subscriber: str) -> None:
    async with httpx.AsyncClient(base_url=ACCOUNT, trust_env=False) as account:
        lookup = f"/internal/v1/subscribers/{subscriber}"
        assert (await account.get(lookup, headers=caller_headers("payment-service"))).status_code == 200
        assert (await account.get(lookup, headers=caller_headers("notify-service"))).status_code == 403
        stolen = caller_headers("payment-service", key=local_key("ops"))  # one caller's key as another
        assert (await account.get(lookup, headers=stolen)).status_code == 403
        provisioning = {"name": "X", "plan": "prepaid", "status": "suspended"}
        for caller in ("payment-service", "vas-service", "loyalty-service"):
            r = await account.put(lookup, json=provisioning, headers=caller_headers(caller))
            assert r.status_code == 403, f"{caller} cannot provision"
        assert (await account.get(lookup, headers=caller_headers("ops"))).json()["status"] == "active"


def stranger_address(n: int) -> str:
    return f"127.{random.randint(10, 250)}.{100 + n}.{random.randint(1, 254)}"


async def hammer(msisdn: str, addresses: int, wrong_codes: int, ask_for_codes: bool = False) -> list[int]:
    """A stranger's crowd: from each address, codes asked for (optionally) and wrong codes sent."""
    statuses = []
    for n in range(addresses):
        async with client_from(stranger_address(n)) as stranger:
            if ask_for_codes:
                r = await stranger.post("/api/v1/auth/otp", json={"msisdn": msisdn})
                statuses.append(r.status_code)
            for _ in range(wrong_codes):
                r = await stranger.post("/api/v1/auth/otp/verify", json={"msisdn": msisdn, "code": "000000"})
                statuses.append(r.status_code)
    return statuses


async def test_the_owner_gets_in_with_his_code_after_strangers_sent_60_wrong_codes_from_12_addresses(
    subscriber: str,
) -> None:
    statuses = await hammer(subscriber, addresses=12, wrong_codes=5)
    assert len(statuses) == 60 and set(statuses) <= {401, 429}
    async with client_from(f"127.{random.randint(10, 250)}.3.{random.randint(1, 254)}") as owner:
        sent = await sms_count(subscriber)
        assert (await owner.post("/api/v1/auth/otp", json={"msisdn": subscriber})).status_code == 202
        code = await latest_code(subscriber, sent_before=sent)
        r = await owner.post("/api/v1/auth/otp/verify", json={"msisdn": subscriber, "code": code})
        assert r.status_code == 200, r.text


async def test_an_owner_on_the_carrier_network_logs_in_while_strangers_hammer_from_twenty_addresses(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    statuses = await hammer(subscriber, addresses=20, wrong_codes=3, ask_for_codes=True)
    assert set(statuses) <= {202, 401, 429}
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})
    assert r.status_code == 200, r.text


async def test_a_phone_that_logged_in_before_gets_a_code_on_wifi_while_strangers_spend_the_numbers_budget(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    device = (await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})).json()
    await hammer(subscriber, addresses=20, wrong_codes=3, ask_for_codes=True)
    async with client_from(f"127.{random.randint(10, 250)}.4.{random.randint(1, 254)}") as home_wifi:
        anonymous = await home_wifi.post("/api/v1/auth/otp", json={"msisdn": subscriber})
        assert anonymous.status_code == 429, "the strangers spent the number's budget for unknown phones"
        sent = await sms_count(subscriber)
        r = await home_wifi.post(
            "/api/v1/auth/otp", json={"msisdn": subscriber, "device_token": device["device_token"]}
        )
        assert r.status_code == 202, r.text
        code = await latest_code(subscriber, sent_before=sent)
        r = await home_wifi.post(
            "/api/v1/auth/otp/verify",
            json={"msisdn": subscriber, "code": code, "device_token": device["device_token"]},
        )
        assert r.status_code == 200, r.text
