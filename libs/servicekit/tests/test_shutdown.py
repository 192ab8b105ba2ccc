"""The kit's graceful server (servicekit.shutdown) in a real process on a real port: after
SIGTERM readiness answers 503 while the listener still answers, a request in flight is
answered after the listener has closed, and the process exits; a second signal skips the
delay. (The whole service's drain, with Kafka and the store, is
tests/platform/test_graceful_shutdown.py.)"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

SERVER = """
import sys
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from servicekit.shutdown import GracefulServer

app = FastAPI()
draining = []

@app.get("/ready")
async def ready() -> JSONResponse:
    return JSONResponse({"status": "draining" if draining else "ready"}, 503 if draining else 200)

@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}

config = uvicorn.Config(
    app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, timeout_graceful_shutdown=5
)
GracefulServer(config, on_signal=lambda: draining.append(True), delay=float(sys.argv[2])).run()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def status_of(port: int) -> str:
    try:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            r = await client.get(f"http://127.0.0.1:{port}/ready")
            return f"{r.status_code} {r.json()['status']}"
    except httpx.HTTPError:
        return "no answer"


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


@asynccontextmanager
async def server(delay: float) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, str(port), str(delay))
    try:
        await until(lambda: _is(port, "200 ready"), timeout=120)  # a loaded machine imports slowly
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _is(port: int, expected: str) -> bool:
    return await status_of(port) == expected


@pytest.fixture
async def slow_drain() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    async with server(delay=1.5) as running:
        yield running


async def test_sigterm_makes_readiness_503_then_closes_and_answers_the_request_in_flight(
    slow_drain: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, port = slow_drain
    body = b'{"text": "' + b"x" * 1000 + b'"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[:-10])  # in flight: the server waits for the rest
    await writer.drain()

    process.send_signal(signal.SIGTERM)
    await until(lambda: _is(port, "503 draining"), timeout=5)  # the listener still answers
    await until(lambda: _is(port, "no answer"), timeout=10)  # then it closes

    writer.write(body[-10:])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    assert status_line.split()[1] == b"200", status_line
    assert b'"received":1012' in await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert await asyncio.wait_for(process.wait(), timeout=10) == 0, "a drained service exits normally"


async def test_a_second_signal_skips_the_delay() -> None:
    async with server(delay=60.0) as (process, port):
        process.send_signal(signal.SIGTERM)
        await until(lambda: _is(port, "503 draining"), timeout=5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=10)
        assert time.monotonic() - started < 10, "the 60 s delay was not skipped"
