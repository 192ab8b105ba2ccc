"""The sandbox answers like the providers do, counts deliveries and injects faults."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from push_sandbox.app import PushSandbox


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=PushSandbox()), base_url="http://s") as c:
        yield c


def apns_headers(collapse: str = "c1") -> dict[str, str]:
    token = jwt.encode(
        {"iss": "TEAM"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "K"}
    )
    return {"authorization": f"bearer {token}", "apns-topic": "vn.app", "apns-collapse-id": collapse}


async def test_apns_counts_deliveries_and_what_the_phone_shows(client: httpx.AsyncClient) -> None:
    token = secrets.token_hex(32)
    for _ in range(2):
        r = await client.post(f"/3/device/{token}", json={"aps": {"alert": "hi"}}, headers=apns_headers())
        assert r.status_code == 200 and r.headers["apns-id"]
    counts = (await client.post("/sandbox/deliveries", json={"tokens": [token], "collapse_id": "c1"})).json()
    assert counts[token] == {"deliveries": 2, "shown": 2}


async def test_apns_refuses_what_apple_refuses(client: httpx.AsyncClient) -> None:
    token = secrets.token_hex(32)
    no_jwt = await client.post(f"/3/device/{token}", json={"aps": {}}, headers={"apns-topic": "t"})
    assert (no_jwt.status_code, no_jwt.json()["reason"]) == (403, "InvalidProviderToken")
    bad = await client.post("/3/device/xyz", json={"aps": {}}, headers=apns_headers())
    assert (bad.status_code, bad.json()["reason"]) == (400, "BadDeviceToken")
    await client.post("/sandbox/unregister", json={"tokens": [token]})
    gone = await client.post(f"/3/device/{token}", json={"aps": {}}, headers=apns_headers())
    assert gone.status_code == 410 and gone.json()["timestamp"] > 0


async def test_fcm_needs_an_access_token_and_reports_unregistered_tokens(client: httpx.AsyncClient) -> None:
    message = {"message": {"token": "fcm-" + "a" * 40, "android": {"notification": {"tag": "p1"}}}}
    assert (await client.post("/v1/projects/p/messages:send", json=message)).status_code == 401
    assertion = jwt.encode({"iss": "sa@x", "scope": "s"}, _rsa(), algorithm="RS256")
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    access = (await client.post("/token", data=grant)).json()["access_token"]
    auth = {"authorization": f"Bearer {access}"}
    assert (await client.post("/v1/projects/p/messages:send", json=message, headers=auth)).status_code == 200
    await client.post("/sandbox/unregister", json={"tokens": [message["message"]["token"]]})
    r = await client.post("/v1/projects/p/messages:send", json=message, headers=auth)
    assert r.status_code == 404 and r.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"


async def test_injected_faults_answer_429_then_503_then_deliver(client: httpx.AsyncClient) -> None:
    assert (
        await client.post("/sandbox/faults", json={"rate_limited": 1, "server_errors": 1})
    ).status_code == 200
    token = secrets.token_hex(32)
    statuses = [
        (await client.post(f"/3/device/{token}", json={"aps": {}}, headers=apns_headers())).status_code
        for _ in range(3)
    ]
    assert statuses == [429, 503, 200]
    assert (await client.post("/sandbox/faults", json={"rate_limited": -1})).status_code == 400


def _rsa() -> object:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
