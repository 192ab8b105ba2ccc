"""The sandbox: SMPP server and HTTP API sharing one event loop and one message store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from types import TracebackType

import uvicorn

from .http_api import create_http_app
from .metrics import SmscMetrics
from .reassembly import Reassembler
from .session import SharedState
from .settings import SmscSettings
from .smpp_server import SmppServer
from .store import MessageStore
from .throttle import TokenBucket

log = logging.getLogger("smsc_sandbox")

_HTTP_STARTUP_TIMEOUT_SECONDS = 10.0


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the sandbox decides when to stop both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SmscSandbox:
    def __init__(self, settings: SmscSettings) -> None:
        self.settings = settings
        self.store = MessageStore(settings.max_messages, settings.record_file)
        self.metrics = SmscMetrics()
        throttle = TokenBucket(settings.throttle_per_second) if settings.throttle_per_second else None
        self.smpp = SmppServer(SharedState(settings, self.store, self.metrics, Reassembler(), throttle))
        self.http_app = create_http_app(self.store, self.metrics)
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None

    @property
    def smpp_port(self) -> int:
        return self.smpp.port

    @property
    def http_port(self) -> int:
        if self._http_socket is None:
            raise RuntimeError("sandbox not started")
        port: int = self._http_socket.getsockname()[1]
        return port

    async def start(self) -> None:
        await self.smpp.start()
        try:
            await self._start_http()
        except BaseException:
            await self.smpp.stop()
            raise
        log.info("sandbox started", extra={"smpp_port": self.smpp_port, "http_port": self.http_port})

    async def stop(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await asyncio.gather(self._http_task, return_exceptions=True)
            self._http = self._http_task = None
        await self.smpp.stop()
        log.info("sandbox stopped")

    async def __aenter__(self) -> SmscSandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _start_http(self) -> None:
        # Binding the socket ourselves gives the real port at once, even for port 0 in tests.
        self._http_socket = _listening_socket(self.settings.http_host, self.settings.http_port)
        config = uvicorn.Config(self.http_app, log_config=None, access_log=False, lifespan="off")
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[self._http_socket]), name="smsc-http")
        async with asyncio.timeout(_HTTP_STARTUP_TIMEOUT_SECONDS):
            while not self._http.started:
                if self._http_task.done():
                    self._http_task.result()  # re-raise why uvicorn died
                    raise RuntimeError("HTTP server exited during startup")
                await asyncio.sleep(0.01)


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
