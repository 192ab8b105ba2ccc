"""Top-ups the way a subscriber makes them, with no service played: the operator mints a
scratch card through the payment service's internal route (as the card printer's batch
import does), the subscriber scratches it in the app through the gateway, and the payment
service settles it, the account service credits it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from .conftest import OPS_HEADERS, PAYMENT


async def mint_card(value: int) -> tuple[str, str]:
    serial = f"{uuid.uuid4().int % 10**14:014d}"
    pin = f"{uuid.uuid4().int % 10**13:013d}"
    async with httpx.AsyncClient(base_url=PAYMENT, trust_env=False, timeout=30) as service:
        r = await service.post(
            "/internal/v1/scratch-cards/batches",
            json={
                "batch_id": f"e2e-{serial}",
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


async def scratch(client: httpx.AsyncClient, auth: dict[str, str], serial: str, pin: str) -> dict[str, Any]:
    r = await client.post("/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": pin}, headers=auth)
    assert r.status_code in (200, 201, 202), r.text
    body: dict[str, Any] = r.json()
    return body


async def top_up(client: httpx.AsyncClient, auth: dict[str, str], value: int) -> None:
    """A scratch card of `value` (10 000 … 500 000 đ) scratched by the subscriber."""
    serial, pin = await mint_card(value)
    await scratch(client, auth, serial, pin)
