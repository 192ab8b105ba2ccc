from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
import uvicorn
from starlette.types import ASGIApp

from vnpay import GatewayConfig

SECRET = "unit-test-secret"


@pytest.fixture
def config() -> GatewayConfig:
    return GatewayConfig(
        tmn_code="MYMOBI01",
        hash_secret=SECRET,  # type: ignore[arg-type]
        pay_url="http://127.0.0.1:8192/paymentv2/vpcpay.html",
        return_url="http://127.0.0.1:8080/payments/return",
        api_url="http://127.0.0.1:8192/merchant_webapi/api/transaction",
    )


@pytest.fixture
def now() -> datetime:
    return datetime(2025, 3, 5, 7, 30, 0, tzinfo=UTC)  # 14:30:00 in Hanoi


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on an ephemeral loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
