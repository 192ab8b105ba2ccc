"""End-to-end tests drive the running platform (`make up`) through the gateway, as the app
would. Kafka is used directly only to play other systems (the charging mediation, a
misbehaving producer); subscriptions are provisioned through the account service's
internal API, as the operator's BSS would."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from servicekit.internal_keys import caller_headers
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import kafka_access

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")
ACCOUNT = os.environ.get("ACCOUNT_URL", "http://127.0.0.1:8101")
PAYMENT = os.environ.get("PAYMENT_URL", "http://127.0.0.1:8103")
SMSC = os.environ.get("SMSC_URL", "http://127.0.0.1:8191")
PROVIDER = os.environ.get("PROVIDER_URL", "http://127.0.0.1:8192")
# The operators' tools call internal routes as "ops" (local key unless OPS_INTERNAL_KEY is set).
OPS_HEADERS = caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None)
CARRIER_PROXY = "127.0.0.2"  # inside CARRIER_PROXY_CIDRS of the local gateway

pytestmark = pytest.mark.e2e


def client_from(address: str, base: str = GATEWAY) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z is this machine)."""
    return httpx.AsyncClient(
        base_url=base,
        transport=httpx.AsyncHTTPTransport(local_address=address),
        timeout=15.0,
        trust_env=False,
    )


@pytest.fixture
async def carrier() -> AsyncIterator[httpx.AsyncClient]:
    """A phone on MobiFone mobile data: its requests reach us through the carrier's proxy."""
    async with client_from(CARRIER_PROXY) as client:
        yield client


@pytest.fixture
async def wifi() -> AsyncIterator[httpx.AsyncClient]:
    """A phone on Wi-Fi: an ordinary Internet address (a fresh one per test, so per-client
    limits of one test do not leak into another)."""
    address = f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    async with client_from(address) as client:
        yield client


@pytest.fixture
async def ocs() -> AsyncIterator[EventPublisher]:
    """The operator's online charging system (an outside party): it publishes rated usage on
    network.usage.v1 as its own Kafka principal, `ocs-mediation`, which may write nothing else."""
    publisher = EventPublisher(kafka_access("ocs-mediation"), "ocs-mediation")
    await publisher.start()
    yield publisher
    await publisher.stop()


@pytest.fixture
def new_number() -> Callable[[], str]:
    return lambda: "8477" + f"{random.randrange(10**7):07d}"


@pytest.fixture
async def subscriber(new_number: Callable[[], str]) -> str:
    """A freshly provisioned prepaid MobiFone subscription, unique to the test."""
    msisdn = new_number()
    await provision(msisdn)
    return msisdn


async def provision(
    msisdn: str, plan: str = "prepaid", status: str = "active", name: str = "Khách Kiểm Thử"
) -> None:
    async with httpx.AsyncClient(base_url=ACCOUNT, trust_env=False) as client:
        r = await client.put(
            f"/internal/v1/subscribers/{msisdn}",
            json={"name": name, "plan": plan, "status": status},
            headers=OPS_HEADERS,
        )
        r.raise_for_status()


async def header_login(carrier: httpx.AsyncClient, msisdn: str) -> dict[str, str]:
    """Logs in over mobile data; the headers returned are what that phone's later requests
    carry: its token, and the number the carrier's proxy adds to every request."""
    r = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": msisdn})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "X-MSISDN": msisdn}


async def sms_count(msisdn: str) -> int:
    async with httpx.AsyncClient(base_url=SMSC, trust_env=False) as client:
        r = await client.get("/messages", params={"to": msisdn, "limit": 1000})
        return len(r.json())


async def latest_code(msisdn: str, sent_before: int = 0, wait_seconds: float = 10.0) -> str:
    """The code of the newest SMS to the number, once more than `sent_before` SMS reached it:
    codes are sent from a queue after the request was answered."""
    async with httpx.AsyncClient(base_url=SMSC, trust_env=False) as client:
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            r = await client.get("/messages", params={"to": msisdn, "limit": 1000})
            messages = r.json() if r.status_code == 200 else []
            if len(messages) > sent_before:
                break
            assert asyncio.get_running_loop().time() < deadline, f"no new SMS to {msisdn}"
            await asyncio.sleep(0.05)
        match = re.search(r"\b(\d{6})\b", messages[0]["text"])
        assert match, messages[0]["text"]
        return match.group(1)


async def set_first_password(carrier: httpx.AsyncClient, msisdn: str, password: str) -> dict[str, str]:
    """Sets the number's portal password from a phone on mobile data, proving it with a fresh
    code by SMS (as the app does); returns the headers of the new session it gets."""
    auth = await header_login(carrier, msisdn)
    sent = await sms_count(msisdn)
    # As every request of that phone: the carrier's proxy adds the number (a code is bound to
    # whoever asked for it, here the subscriber on the carrier's network).
    r = await carrier.post("/api/v1/auth/otp", json={"msisdn": msisdn}, headers={"X-MSISDN": msisdn})
    assert r.status_code == 202, r.text
    code = await latest_code(msisdn, sent_before=sent)
    r = await carrier.put("/api/v1/me/password", json={"password": password, "otp_code": code}, headers=auth)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "X-MSISDN": msisdn}
