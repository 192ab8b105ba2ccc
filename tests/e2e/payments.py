"""Helpers for payment tests: start a payment through the gateway, pay it at the sandbox."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from .conftest import PROVIDER

APPROVED_VISA = "4111111111111111"
APPROVED_MASTERCARD = "5555555555554444"
VISA_3DS = "4000000000003220"
DECLINED_VISA = "4000000000000002"
NO_FUNDS_VISA = "4000000000009995"
APPROVED_NCB = "9704198526191432198"  # domestic ATM card, always with the bank's OTP
SANDBOX_OTP = "123456"


def sandbox() -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=PROVIDER, timeout=30.0, trust_env=False)


async def start_topup(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    amount: int,
    *,
    method: str = "international",
    target: str | None = None,
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"amount_vnd": amount, "method": method}
    if target:
        body["target_msisdn"] = target
    return await client.post(
        "/api/v1/me/topups/card",
        json=body,
        headers=auth | {"Idempotency-Key": key or f"k-{uuid.uuid4().hex}"},
    )


async def switch(txn_ref: str, **plan: Any) -> None:
    async with sandbox() as provider:
        r = await provider.post("/sandbox/switches", json={"txn_ref": txn_ref, **plan})
        assert r.status_code == 201, r.text


async def pay(payment_url: str, card: str, otp: str | None = SANDBOX_OTP) -> dict[str, Any]:
    async with sandbox() as provider:
        r = await provider.post("/sandbox/pay", json={"payment_url": payment_url, "card": card, "otp": otp})
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


async def notifications(txn_ref: str) -> list[dict[str, Any]]:
    async with sandbox() as provider:
        r = await provider.get("/sandbox/notifications", params={"txn_ref": txn_ref})
        result: list[dict[str, Any]] = r.json()
        return result


async def payment(client: httpx.AsyncClient, auth: dict[str, str], payment_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/me/payments/{payment_id}", headers=auth)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def main_balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await client.get("/api/v1/me/balances", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["main"]["balance_vnd"])


async def top_up(client: httpx.AsyncClient, auth: dict[str, str], amount: int) -> None:
    """Money in as a subscriber gets it: a card top-up through the payment service, paid at the
    provider sandbox, returning once the account service has credited it (no service played)."""
    from servicekit.testing import eventually

    before = await main_balance(client, auth)
    started = await start_topup(client, auth, amount)
    assert started.status_code == 201, started.text
    assert (await pay(started.json()["payment_url"], APPROVED_VISA))["response_code"] == "00"

    async def credited() -> bool:
        return await main_balance(client, auth) >= before + amount

    await eventually(credited, timeout=30)
