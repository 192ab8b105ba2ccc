"""Top-ups through the gateway, as the app and the provider drive them, to check that no
money event is lost when a part of the platform fails (the e2e tests' flows, on any ports)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from mobi_contracts.events.network import UsageRecorded, UsageRecordedData

from .conftest import CARRIER_PROXY, OPS_HEADERS, ROOT, Platform, script_env

APPROVED_VISA = "4111111111111111"


class Subscriber:
    """A freshly provisioned prepaid subscriber, logged in over mobile data."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.msisdn = "8477" + f"{random.randrange(10**7):07d}"
        self.auth: dict[str, str] = {}
        self.client = httpx.AsyncClient(
            base_url=platform.url("gateway"),
            transport=httpx.AsyncHTTPTransport(local_address=CARRIER_PROXY),
            timeout=15.0,
            trust_env=False,
        )

    async def __aenter__(self) -> Subscriber:
        async with httpx.AsyncClient(base_url=self.platform.url("account"), trust_env=False) as account:
            r = await account.put(
                f"/internal/v1/subscribers/{self.msisdn}",
                json={"name": "Khách Kiểm Thử", "plan": "prepaid", "status": "active"},
                headers=OPS_HEADERS,
            )
            r.raise_for_status()
        r = await self.client.post("/api/v1/auth/header-login", headers={"X-MSISDN": self.msisdn})
        assert r.status_code == 200, r.text
        self.auth = {"Authorization": f"Bearer {r.json()['access_token']}", "X-MSISDN": self.msisdn}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def start_card_topup(self, amount: int) -> dict[str, Any]:
        r = await self.client.post(
            "/api/v1/me/topups/card",
            json={"amount_vnd": amount, "method": "international"},
            headers=self.auth | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def pay(self, payment: dict[str, Any]) -> None:
        """Pays at the provider's sandbox; its notification reaches us through the gateway (and
        is retried by the provider until we acknowledge it)."""
        async with httpx.AsyncClient(
            base_url=self.platform.url("payprov"), timeout=30.0, trust_env=False
        ) as p:
            r = await p.post(
                "/sandbox/pay", json={"payment_url": payment["payment_url"], "card": APPROVED_VISA}
            )
            assert r.status_code == 200, r.text

    async def redeem(self, serial: str, pin: str, timeout: float = 15.0) -> int | None:
        """A scratch-card top-up: the status code, None when no answer came in time."""
        try:
            r = await self.client.post(
                "/api/v1/me/topups/scratch-card",
                json={"serial": serial, "pin": pin},
                headers=self.auth,
                timeout=timeout,
            )
        except httpx.HTTPError:
            return None
        return r.status_code

    async def balance(self) -> int | None:
        try:
            r = await self.client.get("/api/v1/me/balances", headers=self.auth)
        except httpx.HTTPError:
            return None
        return int(r.json()["main"]["balance_vnd"]) if r.status_code == 200 else None

    async def topups(self) -> list[dict[str, Any]]:
        r = await self.client.get("/api/v1/me/topups", headers=self.auth, params={"limit": 50})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


async def new_scratch_card(platform: Platform, value: int) -> tuple[str, str]:
    serial = f"{uuid.uuid4().int % 10**14:014d}"
    pin = f"{uuid.uuid4().int % 10**13:013d}"
    async with httpx.AsyncClient(base_url=platform.url("payment"), trust_env=False) as service:
        r = await service.post(
            "/internal/v1/scratch-cards/batches",
            json={
                "batch_id": f"platform-{serial}",
                "cards": [
                    {
                        "serial": serial,
                        "pin": pin,
                        "face_value_vnd": value,
                        "expires_at": "2030-12-31T00:00:00+00:00",
                    }
                ],
            },
            headers=OPS_HEADERS,
        )
        assert r.status_code == 201, r.text
    return serial, pin


def usage(msisdn: str, charge: int, usage_id: str) -> UsageRecorded:
    """A rated call as the operator's charging system (ocs-mediation) reports it."""
    return UsageRecorded.new(
        subject=msisdn,
        data=UsageRecordedData(
            usage_id=usage_id,
            kind="voice",
            quantity=60,
            unit="seconds",
            charge_vnd=charge,
            started_at=datetime.now(UTC),
        ),
        producer="ocs-mediation",
        correlation_id=f"cdr-{usage_id}",
    )


async def ledger_check(grace_seconds: int = 20) -> tuple[int, str]:
    """`make ledger-check` on this platform: (exit code, report). Every journal unbroken and
    never below zero, every balance the sum of its entries, every succeeded top-up credited
    exactly once, no settled payment without its events."""
    result = await asyncio.to_thread(
        subprocess.run,
        [str(ROOT / ".venv" / "bin" / "ledger-check"), "--grace-seconds", str(grace_seconds)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr
