"""The subscriber directory is the account service's: ask its internal API (billing type)."""

from __future__ import annotations

import logging

import httpx

from servicekit.errors import ApiError, unavailable
from servicekit.internal_keys import caller_headers

log = logging.getLogger(__name__)


class AccountDirectory:
    def __init__(self, base_url: str, caller: str, internal_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=5.0, headers=caller_headers(caller, internal_key)
        )

    async def billing(self, msisdn: str) -> str:
        """prepaid | postpaid of an active subscription."""
        try:
            response = await self.http.get(f"/internal/v1/subscribers/{msisdn}")
        except httpx.HTTPError as exc:
            raise unavailable("cannot check the subscription right now") from exc
        if response.status_code == 404:
            raise ApiError(422, "not_a_subscriber", f"{msisdn} is not a MobiFone subscription")
        if response.status_code != 200:
            log.warning("subscriber lookup refused", extra={"status": response.status_code})
            raise unavailable("cannot check the subscription right now")
        found = response.json()
        if found.get("status", "active") != "active":
            raise ApiError(409, "subscription_not_active", "the subscription is not active")
        return str(found.get("plan", "prepaid"))

    async def close(self) -> None:
        await self.http.aclose()
