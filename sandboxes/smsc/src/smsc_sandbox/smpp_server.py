"""The SMPP listener: one SmscSession per accepted TCP connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mobi_smpp import SmppConnection, SmppError, Unbind

from .session import SharedState, SmscSession

log = logging.getLogger("smsc_sandbox.smpp")

_SHUTDOWN_UNBIND_TIMEOUT_SECONDS = 2.0


class SmppServer:
    def __init__(self, shared: SharedState) -> None:
        self._shared = shared
        self._server: asyncio.Server | None = None
        self._sessions: dict[SmscSession, SmppConnection] = {}

    async def start(self) -> None:
        settings = self._shared.settings
        self._server = await asyncio.start_server(self._accept, settings.smpp_host, settings.smpp_port)
        log.info("smpp listening", extra={"host": settings.smpp_host, "port": self.port})

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop listening, unbind every bound ESME (as an SMSC going down does), close the rest."""
        if self._server is None:
            return
        self._server.close()
        await asyncio.gather(*(self._end(session, conn) for session, conn in list(self._sessions.items())))
        await self._server.wait_closed()
        self._server = None

    async def drop_connections(self) -> None:
        """Cut every connection without unbinding: a network failure, for resilience tests."""
        connections = list(self._sessions.values())
        for connection in connections:
            connection.abort()
        await asyncio.gather(*(connection.wait_closed() for connection in connections))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = SmscSession(self._shared)
        connection = SmppConnection(reader, writer, session.handle, name="smsc-session")
        session.attach(connection)
        self._sessions[session] = connection
        log.info("connection accepted", extra={"peer": connection.peer})
        connection.start()
        keepalive = self._start_keepalive(session)
        try:
            await connection.wait_closed()
        finally:
            if keepalive is not None:
                keepalive.cancel()
                await asyncio.gather(keepalive, return_exceptions=True)
            self._sessions.pop(session, None)
            session.closed()

    def _start_keepalive(self, session: SmscSession) -> asyncio.Task[None] | None:
        interval = self._shared.settings.enquire_link_interval
        if interval <= 0:
            return None
        return asyncio.create_task(session.keep_alive(interval), name="smsc-enquire-link")

    async def _end(self, session: SmscSession, connection: SmppConnection) -> None:
        if session.bound:
            with contextlib.suppress(SmppError):
                await connection.request(Unbind(), _SHUTDOWN_UNBIND_TIMEOUT_SECONDS)
        await connection.close()
