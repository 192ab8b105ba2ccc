"""The subscriber directory is the account service's: asked once, at enrolment."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from servicekit.errors import unavailable
from servicekit.internal_keys import caller_headers

log = logging.getLogger(__name__)


class AccountDirectory:
    """The subscriber directory is the account service's: asked once, at enrolment."""

    def __init__(self, base_url: str, caller: str, internal_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=5.0, headers=caller_headers(caller, internal_key)
        )

    async def subscriber(self, msisdn: str) -> dict[str, Any] | None:
        try:
            response = await self.http.get(f"/internal/v1/subscribers/{msisdn}")
        except httpx.HTTPError as exc:
            raise unavailable("cannot check the subscription right now") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.error("subscriber lookup failed", extra={"status": response.status_code})
            raise unavailable("cannot check the subscription right now")
        found: dict[str, Any] = response.json()
        return found

    async def close(self) -> None:
        await self.http.aclose()
