"""The subscriber directory and the bills are the account service's: other services ask its
internal API (`/internal/v1/subscribers/{msisdn}`, `/internal/v1/bills/{bill_id}`), each as
itself with its own internal key.

Numbers are portable, so whether a number is a MobiFone subscription is the directory's
answer, never its prefix. An answer the account service cannot give (down, slow, an error)
is a 503 to the caller's client: never "not a subscriber".
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from .errors import unavailable
from .internal_keys import caller_headers

log = logging.getLogger(__name__)


class AccountDirectory:
    def __init__(self, base_url: str, caller: str, internal_key: str, timeout: float = 5.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=caller_headers(caller, internal_key)
        )

    async def _lookup(self, path: str, what: str) -> dict[str, Any] | None:
        """The account service's answer; None when it does not know the thing (404)."""
        try:
            response = await self.http.get(path)
        except httpx.HTTPError as exc:
            raise unavailable(f"cannot {what} right now") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.error("account directory lookup failed", extra={"status": response.status_code})
            raise unavailable(f"cannot {what} right now")
        found: dict[str, Any] = response.json()
        return found

    async def subscriber(self, msisdn: str) -> dict[str, Any] | None:
        """{msisdn, status, plan, since} of the subscription, None when the number is not ours."""
        return await self._lookup(f"/internal/v1/subscribers/{msisdn}", "check the subscription")

    async def is_subscriber(self, msisdn: str) -> bool:
        """An active MobiFone subscription."""
        found = await self.subscriber(msisdn)
        return found is not None and found.get("status") == "active"

    async def bill(self, bill_id: str) -> dict[str, Any] | None:
        """{bill_id, msisdn, amount_vnd, status} of a bill, None when there is no such bill."""
        return await self._lookup(f"/internal/v1/bills/{bill_id}", "look up the bill")

    async def close(self) -> None:
        await self.http.aclose()
