"""The sandbox in-process on ephemeral ports, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from smsc_sandbox import SmscSandbox, SmscSettings

SYSTEM_ID = "mymobifone"
PASSWORD = "smsc-pwd"

SandboxFactory = Callable[..., Awaitable[SmscSandbox]]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """Start sandboxes with settings overrides; all are stopped at teardown."""
    started: list[SmscSandbox] = []

    async def make(**overrides: Any) -> SmscSandbox:
        defaults: dict[str, Any] = {
            "smpp_port": 0,
            "http_port": 0,
            "system_id": SYSTEM_ID,
            "password": PASSWORD,
        }
        sandbox = SmscSandbox(SmscSettings(**(defaults | overrides)))
        await sandbox.start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        await sandbox.stop()


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> SmscSandbox:
    return await make_sandbox()


@pytest.fixture
async def http(sandbox: SmscSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sandbox.http_port}", timeout=5) as client:
        yield client
