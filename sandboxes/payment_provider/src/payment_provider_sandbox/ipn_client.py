"""The HTTP client the sandbox delivers notifications with.

aiohttp rather than httpx: httpcore's pool checks every pooled connection's socket on every
request, so a burst of 50 notifications spent most of the sandbox's time in the pool
(py-spy: `_assign_requests_to_connections` -> `is_socket_readable`) and added 0.3-2 s to
what the benchmark measured as the merchant's answer time.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp


class TransportError(Exception):
    """No HTTP answer: refused, reset, timed out."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class IpnClient:
    def __init__(self, timeout_s: float, user_agent: str = "payment-provider-sandbox/0.1") -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = {"User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self._headers,
                trust_env=False,  # straight to the merchant, never via an environment proxy
                connector=aiohttp.TCPConnector(limit=200),
            )
        return self._session

    async def send(self, method: str, url: str, params: dict[str, str]) -> Answer:
        """GET with a query string (what VNPay does) or POST a form."""
        session = self._open()
        try:
            # POST sends an application/x-www-form-urlencoded form.
            request = session.get(url, params=params) if method == "GET" else session.post(url, data=params)
            async with request as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
