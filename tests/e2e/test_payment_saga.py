"""The top-up saga across services, with the account service down in the middle, and the
reconciliation that catches what notifications missed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from servicekit.testing import eventually

from .conftest import header_login
from .payments import APPROVED_VISA, notifications, pay, payment, sandbox, start_topup, switch

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def platform(*args: str) -> None:
    subprocess.run(
        [str(ROOT / "deploy/local/platform.sh"), *args], check=True, capture_output=True, timeout=180
    )


def reconcile(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "payment-reconcile"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


async def balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int | None:
    r = await client.get("/api/v1/me/balances", headers=auth)
    return int(r.json()["main"]["balance_vnd"]) if r.status_code == 200 else None


async def test_a_topup_paid_while_the_account_service_is_down_is_credited_once_when_it_returns(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 90_000)).json()
    platform("stop-app", "account")
    try:
        await pay(body["payment_url"], APPROVED_VISA)
        assert (await eventually(lambda: _status(carrier, auth, body["payment_id"]))) == "succeeded"
        assert await balance(carrier, auth) is None  # the account service is away
        await asyncio.sleep(1.0)
    finally:
        platform("start-app")
    fresh = await header_login(carrier, subscriber)
    await eventually(lambda: _balance_is(carrier, fresh, 90_000), timeout=60)
    await asyncio.sleep(2.0)
    assert await balance(carrier, fresh) == 90_000
    topups = (await carrier.get("/api/v1/me/topups", headers=fresh)).json()["items"]
    assert len(topups) == 1


async def test_reconciliation_settles_a_payment_whose_notification_never_came(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    paid = (await start_topup(carrier, auth, 45_000)).json()
    await switch(paid["payment_id"], drop=True)
    await pay(paid["payment_url"], APPROVED_VISA)
    abandoned = (await start_topup(carrier, auth, 10_000)).json()  # the user never paid
    await asyncio.sleep(0.5)
    assert (await payment(carrier, auth, paid["payment_id"]))["status"] == "pending"

    code, output = reconcile("--pending-after-seconds", "0", "--credit-wait-seconds", "3600")
    assert code == 0, output
    assert "unexplained: 0" in output
    assert (await payment(carrier, auth, paid["payment_id"]))["status"] == "succeeded"
    assert (await payment(carrier, auth, abandoned["payment_id"]))["status"] == "expired"
    await eventually(lambda: _balance_is(carrier, auth, 45_000))


async def test_after_the_test_runs_reconciliation_finds_nothing_unexplained() -> None:
    code, output = reconcile("--credit-wait-seconds", "30")
    assert code == 0, output
    assert "unexplained: 0" in output


async def _status(client: httpx.AsyncClient, auth: dict[str, str], payment_id: str) -> str | None:
    status = (await payment(client, auth, payment_id))["status"]
    return None if status == "pending" else str(status)


async def _balance_is(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await balance(client, auth) == expected


async def test_a_payment_still_in_progress_at_the_provider_is_never_expired_and_its_late_success_credits(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    paid = (await start_topup(carrier, auth, 35_000)).json()
    # The bank has not confirmed yet: the provider says "in progress" and has not notified us.
    await switch(paid["payment_id"], query_in_progress=True, drop=True)
    await pay(paid["payment_url"], APPROVED_VISA)
    code, output = reconcile("--pending-after-seconds", "0", "--credit-wait-seconds", "3600")
    assert code == 0, output
    assert (await payment(carrier, auth, paid["payment_id"]))["status"] == "pending", output
    assert "still in progress at the provider (asked again later): 0" not in output
    # Long past its window, the confirmation comes after all: it is credited.
    async with sandbox() as provider:
        r = await provider.post(f"/sandbox/notifications/{paid['payment_id']}/resend")
        assert r.status_code == 200, r.text
    assert (await eventually(lambda: _status(carrier, auth, paid["payment_id"]), timeout=30)) == "succeeded"
    await eventually(lambda: _balance_is(carrier, auth, 35_000))


async def test_a_payment_we_expired_and_the_provider_then_confirms_is_credited(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    late = (await start_topup(carrier, auth, 25_000)).json()
    # Not at the provider yet (the customer is slow to open the page): we expire it...
    code, output = reconcile("--pending-after-seconds", "0", "--credit-wait-seconds", "3600")
    assert code == 0, output
    assert (await payment(carrier, auth, late["payment_id"]))["status"] == "expired"
    # ...and then the customer pays within the provider's window: the card is charged.
    await pay(late["payment_url"], APPROVED_VISA)
    notes = await notifications(late["payment_id"])
    assert [a["rsp_code"] for n in notes for a in n["attempts"]][-1] == "00", notes
    assert (await eventually(lambda: _status(carrier, auth, late["payment_id"]))) == "succeeded"
    await eventually(lambda: _balance_is(carrier, auth, 25_000))
    await asyncio.sleep(1.0)
    assert await balance(carrier, auth) == 25_000
