"""No error leaves a service's ASGI stack: the connection that carried a 500 stays usable.

Starlette answers an unhandled exception with a 500 and re-raises it; uvicorn then closes
the connection, while the gateway (keep-alive to its upstreams) may already reuse it for the
next request, which fails with a 502. Proved here on a real uvicorn server and one raw
keep-alive connection, as nginx holds it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
import uvicorn
from fastapi import FastAPI

from servicekit.http import RequestContextMiddleware, install_error_handlers

pytestmark = pytest.mark.integration


def kit_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, service="tests")
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: service\r\n\r\n".encode())
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_a_500_answers_in_json_and_the_same_connection_serves_the_next_request() -> None:
    async with serving(kit_app()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                status, headers, body = await exchange(reader, writer, "/boom")
                assert status == 500 and headers.get("connection") != "close"
                assert orjson.loads(body)["error"] == "internal_error"
                assert "x-request-id" in headers
                status, _, body = await exchange(reader, writer, "/ok")
                assert (status, orjson.loads(body)) == (200, {"status": "ok"})
        finally:
            writer.close()
