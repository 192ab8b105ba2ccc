"""The running gateway and services (`make up`): header enrichment cannot be doubled, and a
gateway key leaked by one service does not speak for the gateway to another."""

from __future__ import annotations

import os

import httpx
import pytest

from .conftest import ACCOUNT, client_from

pytestmark = pytest.mark.e2e


def local_gateway_key(service: str) -> str:
    """The key the gateway sends `service` (the local profile's default unless overridden)."""
    return os.environ.get(f"GATEWAY_KEY_{service.upper()}") or f"local-gateway-key-{service}-service"


@pytest.mark.parametrize("first", ["84909999999", None])
async def test_two_msisdn_headers_from_the_carrier_are_refused(
    carrier: httpx.AsyncClient, subscriber: str, first: str | None
) -> None:
    """A phone that puts its own X-MSISDN before the one the carrier's proxy appends must not
    choose whom it logs in as (nginx alone would take one of the two)."""
    headers = [("X-MSISDN", first or subscriber), ("X-MSISDN", subscriber)]
    r = await carrier.post("/api/v1/auth/header-login", headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "duplicate_msisdn_header"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert "access_token" not in r.text
    # The same subscriber with one header logs in.
    ok = await carrier.post("/api/v1/auth/header-login", headers={"X-MSISDN": subscriber})
    assert ok.status_code == 200, ok.text


async def test_only_the_account_services_own_gateway_key_allows_header_login(subscriber: str) -> None:
    """Straight to the account service (as a compromised neighbour inside the network would):
    the key the gateway gives the payment service does not make X-MSISDN trusted."""
    async with client_from("127.0.0.1", ACCOUNT) as direct:
        for key in (local_gateway_key("payment"), "local-gateway-key", ""):
            r = await direct.post(
                "/api/v1/auth/header-login",
                headers={"X-MSISDN": subscriber, "X-Gateway-Key": key, "X-Network": "carrier"},
            )
            assert r.status_code == 401, (key, r.text)
            assert r.json()["error"] == "not_on_carrier_network"
        r = await direct.post(
            "/api/v1/auth/header-login",
            headers={
                "X-MSISDN": subscriber,
                "X-Gateway-Key": local_gateway_key("account"),
                "X-Network": "carrier",
            },
        )
        assert r.status_code == 200, r.text
