"""Peers for the client tests, all on 127.0.0.1 with ephemeral ports.

- `sandbox`: the real SMSC sandbox (sandboxes/smsc).
- `scripted_smsc`: a bare SMSC made of raw frames whose behaviour a test sets (slow answers,
  no answers, refusals, server-initiated PDUs); each request is answered from its own task so
  several can be outstanding at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mobi_smpp import (
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandStatus,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SmppClient,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
    read_frame,
)
from smsc_sandbox import SmscSandbox, SmscSettings

SYSTEM_ID = "mymobifone"
PASSWORD = "smsc-pwd"

Eventually = Callable[[Callable[[], bool]], Awaitable[None]]


@pytest.fixture
def eventually() -> Eventually:
    async def wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)

    return wait


@pytest.fixture
async def sandbox() -> AsyncIterator[SmscSandbox]:
    settings = SmscSettings(smpp_port=0, http_port=0, system_id=SYSTEM_ID, password=PASSWORD)
    async with SmscSandbox(settings) as running:
        yield running


class _ClientFactory:
    """Builds clients with test-friendly timings and closes them all at teardown."""

    def __init__(self) -> None:
        self.clients: list[SmppClient] = []

    def __call__(self, port: int, **overrides: Any) -> SmppClient:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "system_id": SYSTEM_ID,
            "password": PASSWORD,
            "request_timeout": 2.0,
            "reconnect_initial_delay": 0.05,
            "reconnect_max_delay": 0.2,
        }
        client = SmppClient(**(options | overrides))
        self.clients.append(client)
        return client

    async def close_all(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def clients() -> AsyncIterator[_ClientFactory]:
    factory = _ClientFactory()
    yield factory
    await factory.close_all()


@dataclasses.dataclass
class ScriptedSmsc:
    bind_status: int = CommandStatus.ESME_ROK
    submit_status: int = CommandStatus.ESME_ROK
    submit_delay: float = 0.0
    answer_submits: bool = True
    answer_enquire_links: bool = True

    binds: int = 0
    enquire_links: int = 0
    unbinds: int = 0
    submits: list[SubmitSm] = dataclasses.field(default_factory=list)
    outstanding: int = 0
    max_outstanding: int = 0
    responses: list[Pdu] = dataclasses.field(default_factory=list)
    writers: list[asyncio.StreamWriter] = dataclasses.field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop_connections(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    def send_to_clients(self, pdu: Pdu) -> None:
        for writer in self.writers:
            writer.write(pdu.encode())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(Exception):
            while (frame := await read_frame(reader)) is not None:
                pdu = decode_pdu(frame)
                if pdu.is_response:
                    self.responses.append(pdu)
                    continue
                task = asyncio.create_task(self._answer(pdu, writer))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, pdu: Pdu, writer: asyncio.StreamWriter) -> None:
        response = await self._respond(pdu)
        if response is not None and not writer.is_closing():
            writer.write(response.encode())

    async def _respond(self, pdu: Pdu) -> Pdu | None:
        sequence_number = pdu.sequence_number
        match pdu:
            case BindTransmitter():
                self.binds += 1
                return BindTransmitterResp(sequence_number=sequence_number, command_status=self.bind_status)
            case BindTransceiver():
                self.binds += 1
                return BindTransceiverResp(sequence_number=sequence_number, command_status=self.bind_status)
            case EnquireLink():
                self.enquire_links += 1
                return EnquireLinkResp(sequence_number=sequence_number) if self.answer_enquire_links else None
            case Unbind():
                self.unbinds += 1
                return UnbindResp(sequence_number=sequence_number)
            case SubmitSm():
                return await self._respond_to_submit(pdu)
        raise AssertionError(f"unexpected {pdu.name}")

    async def _respond_to_submit(self, pdu: SubmitSm) -> Pdu | None:
        self.submits.append(pdu)
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        try:
            if not self.answer_submits:
                return None
            await asyncio.sleep(self.submit_delay)
            return SubmitSmResp(
                sequence_number=pdu.sequence_number,
                command_status=self.submit_status,
                message_id=f"m{len(self.submits)}",
            )
        finally:
            self.outstanding -= 1


@pytest.fixture
async def scripted_smsc() -> AsyncIterator[ScriptedSmsc]:
    smsc = ScriptedSmsc()
    await smsc.start()
    yield smsc
    await smsc.stop()
