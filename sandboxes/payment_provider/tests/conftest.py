"""Real sockets everywhere: the sandbox runs under uvicorn on an ephemeral port, and a small
merchant server (verifying with the `vnpay` library, as the payment service will) receives IPNs."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from payment_provider_sandbox import Settings, create_app
from vnpay import (
    BadSignature,
    GatewayConfig,
    InvalidMessage,
    IpnAnswer,
    Notification,
    PaymentOrder,
    build_payment_url,
    decode_query,
    parse_notification,
    parse_return,
)

TMN_CODE = "MYMOBI01"
SECRET = "sandbox-hash-secret-change-me"
FAST_RETRIES = [0.05, 0.1, 0.2]
_refs = itertools.count(1)


@asynccontextmanager
async def serve(app: ASGIApp, *, lifespan: str = "on") -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on an ephemeral loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Received:
    method: str
    content_type: str
    params: dict[str, str]
    answer: IpnAnswer | None  # None when a scripted failure answered without JSON
    at: datetime


@dataclass
class Merchant:
    """A strict merchant: verifies, checks freshness, amount and order state, answers like VNPay's
    reference IPN handler. Tests can script failures for the next attempts."""

    base_url: str = ""
    orders: dict[str, int] = field(default_factory=dict)
    confirmed: dict[str, Notification] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    scripted: list[int | str] = field(default_factory=list)  # HTTP status, RspCode, or "text"
    max_age: timedelta = timedelta(minutes=5)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def ipn_url(self) -> str:
        return f"{self.base_url}/ipn"

    def reset(self) -> None:
        self.orders.clear()
        self.confirmed.clear()
        self.received.clear()
        self.scripted.clear()

    def codes(self) -> list[str]:
        """RspCode of every IPN received, "-" where a scripted failure answered without one."""
        return [r.answer.rsp_code if r.answer else "-" for r in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return self.received

    async def handle_ipn(self, request: Request) -> Response:
        if request.method == "POST":
            params = decode_query(await request.body())
        else:
            params = decode_query(request.url.query)
        if self.scripted:
            return await self._scripted(request, params, self.scripted.pop(0))
        answer = self.decide(params)
        await self._record(request, params, answer)
        return JSONResponse(answer.to_dict())

    async def _scripted(self, request: Request, params: dict[str, str], scripted: int | str) -> Response:
        if isinstance(scripted, int):
            await self._record(request, params, None)
            return PlainTextResponse("boom", status_code=scripted)
        if scripted == "text":
            await self._record(request, params, None)
            return PlainTextResponse("OK")
        answer = IpnAnswer(rsp_code=scripted, message="scripted")
        await self._record(request, params, answer)
        return JSONResponse(answer.to_dict())

    def decide(self, params: dict[str, str]) -> IpnAnswer:
        try:
            note = parse_notification(
                params, SECRET, now=datetime.now(UTC), max_age=self.max_age, tmn_code=TMN_CODE
            )
        except InvalidMessage as error:
            return IpnAnswer.for_error(error)
        expected = self.orders.get(note.txn_ref)
        if expected is None:
            return IpnAnswer.order_not_found()
        if note.amount_vnd != expected:
            return IpnAnswer.invalid_amount()
        if note.txn_ref in self.confirmed:
            return IpnAnswer.already_confirmed()
        self.confirmed[note.txn_ref] = note
        return IpnAnswer.confirm_success()

    async def _record(self, request: Request, params: dict[str, str], answer: IpnAnswer | None) -> None:
        content_type = request.headers.get("content-type", "")
        async with self._arrived:
            self.received.append(Received(request.method, content_type, params, answer, datetime.now(UTC)))
            self._arrived.notify_all()

    async def handle_return(self, request: Request) -> Response:
        try:
            note = parse_return(decode_query(request.url.query), SECRET, tmn_code=TMN_CODE)
        except BadSignature:
            return PlainTextResponse("bad signature", status_code=400)
        return PlainTextResponse(f"result {note.response_code}")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ipn", self.handle_ipn, methods=["GET", "POST"]),
                Route("/return", self.handle_return, methods=["GET"]),
            ]
        )


@dataclass
class Env:
    """One running sandbox plus the merchant it notifies."""

    base_url: str
    merchant: Merchant
    http: httpx.AsyncClient
    settings: Settings

    @property
    def gateway(self) -> GatewayConfig:
        return GatewayConfig(
            tmn_code=TMN_CODE,
            hash_secret=SECRET,  # type: ignore[arg-type]
            pay_url=f"{self.base_url}/paymentv2/vpcpay.html",
            return_url=f"{self.merchant.base_url}/return",
            api_url=f"{self.base_url}/merchant_webapi/api/transaction",
        )

    def order(
        self, amount_vnd: int = 100_000, bank_code: str | None = "INTCARD", **extra: Any
    ) -> PaymentOrder:
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "txn_ref": f"T{next(_refs):06d}",
            "amount_vnd": amount_vnd,
            "order_info": "Nap tien 0901234567",
            "order_type": "topup",
            "client_ip": "203.0.113.7",
            "bank_code": bank_code,
            "created_at": now,
            "expires_at": now + timedelta(minutes=15),
        }
        fields.update(extra)
        order = PaymentOrder(**fields)
        self.merchant.orders[order.txn_ref] = order.amount_vnd
        return order

    def url(self, order: PaymentOrder) -> str:
        return build_payment_url(self.gateway, order)

    async def pay(self, order: PaymentOrder, card: str = "4111111111111111", **extra: Any) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.base_url}/sandbox/pay", json={"payment_url": self.url(order), "card": card, **extra}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def switch(self, **spec: Any) -> dict[str, Any]:
        response = await self.http.post(f"{self.base_url}/sandbox/switches", json=spec)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def notifications(self, txn_ref: str | None = None) -> list[dict[str, Any]]:
        params = {"txn_ref": txn_ref} if txn_ref else {}
        response = await self.http.get(f"{self.base_url}/sandbox/notifications", params=params)
        body: list[dict[str, Any]] = response.json()
        return body

    async def reset(self) -> None:
        """Forget the sandbox's state (cancelling deliveries) and the merchant's."""
        await self.http.delete(f"{self.base_url}/sandbox/state")
        self.merchant.reset()

    async def settled(self, txn_ref: str | None = None, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Notifications once none is pending any more."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = await self.notifications(txn_ref)
            if records and all(r["status"] not in ("pending",) for r in records):
                return records
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"notifications still pending: {records}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def sandbox_env(
    merchant: Merchant, tmp_path: Path | None = None, **overrides: Any
) -> AsyncIterator[Env]:
    clock = overrides.pop("clock", None)
    fields: dict[str, Any] = {
        "tmn_code": TMN_CODE,
        "hash_secret": SECRET,
        "ipn_url": merchant.ipn_url,
        "ipn_retry_delays_s": FAST_RETRIES,
        "ipn_timeout_s": 2.0,
        "record_path": (tmp_path / "journal.jsonl") if tmp_path else None,
    }
    settings = Settings(**(fields | overrides))
    app = create_app(settings, clock=clock) if clock else create_app(settings)
    async with serve(app) as base, httpx.AsyncClient(timeout=10, trust_env=False) as http:
        yield Env(base, merchant, http, settings)


@pytest.fixture(scope="session")
async def merchant_server() -> AsyncIterator[Merchant]:
    merchant = Merchant()
    async with serve(merchant.app(), lifespan="off") as base:
        merchant.base_url = base
        yield merchant


@pytest.fixture
def merchant(merchant_server: Merchant) -> Iterator[Merchant]:
    """The session's merchant, emptied before and after the test (for tests that start a sandbox)."""
    merchant_server.reset()
    yield merchant_server
    merchant_server.reset()


@pytest.fixture(scope="session")
async def shared_env(
    merchant_server: Merchant, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Env]:
    async with sandbox_env(merchant_server, tmp_path_factory.mktemp("sandbox")) as env:
        yield env


@pytest.fixture
async def env(shared_env: Env) -> AsyncIterator[Env]:
    """The shared sandbox, reset before and after each test."""
    await shared_env.reset()
    yield shared_env
    await shared_env.reset()
