"""One SMPP session over a TCP stream, for either side (ESME client or SMSC sandbox).

It frames PDUs, numbers outgoing requests, matches responses to them by sequence number,
answers malformed input the way the spec asks (generic_nack or an error response), and hands
incoming requests to a handler. What a bind means is left to the owner of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .constants import (
    DEFAULT_MAX_PDU_LENGTH,
    HEADER_LENGTH,
    MAX_SEQUENCE_NUMBER,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
    command_name,
    describe_status,
)
from .errors import (
    FrameLengthError,
    PduDecodeError,
    SmppConnectionError,
    SmppError,
    SmppProtocolError,
    SmppTimeoutError,
    UnknownCommandError,
)
from .pdu import GenericNack, Pdu, decode_header, decode_pdu, error_response

log = logging.getLogger("mobi_smpp.connection")

# How long close() lets buffered bytes (an unbind_resp, say) drain before aborting the socket.
_CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Reply:
    """A request handler's answer: the response PDU, plus what to do once it is on the wire."""

    response: Pdu
    # Started after the response is written: an SMSC must not send a delivery receipt before
    # the submit_sm_resp that tells the ESME the message id.
    after_sent: Callable[[], Awaitable[None]] | None = None
    close: bool = False  # close the connection after the response (unbind)


RequestHandler = Callable[[Pdu], Awaitable[Reply]]


async def read_frame(reader: asyncio.StreamReader, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> bytes | None:
    """Read one whole PDU. None at a clean end of stream (between PDUs).

    Raises FrameLengthError when command_length is out of range: after that the stream cannot
    be re-synchronised and the connection must be closed.
    """
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise SmppConnectionError("connection closed inside a PDU header") from None
    length = int.from_bytes(prefix, "big")
    if length < HEADER_LENGTH:
        raise FrameLengthError(
            f"command_length {length} is shorter than a header", CommandStatus.ESME_RINVCMDLEN
        )
    header = prefix + await _read_exactly(reader, HEADER_LENGTH - 4)
    if length > max_length:
        _, command_id, _, sequence_number = decode_header(header)
        raise FrameLengthError(
            f"command_length {length} exceeds the {max_length}-octet limit",
            CommandStatus.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence_number,
        )
    return header + await _read_exactly(reader, length - HEADER_LENGTH)


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise SmppConnectionError("connection closed inside a PDU") from None


class SmppConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: RequestHandler,
        *,
        name: str = "smpp",
        max_pdu_length: int = DEFAULT_MAX_PDU_LENGTH,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._max_pdu_length = max_pdu_length
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._last_sequence = 0
        # One PDU's bytes must never interleave with another's; drain() is awaited under it too.
        self._write_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.name = name

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        """Start reading and dispatching PDUs in the background."""
        if self._reader_task is None:
            self._reader_task = asyncio.create_task(self._read_loop(), name=f"{self.name}-reader")

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def request(self, pdu: Pdu, timeout_seconds: float) -> Pdu:
        """Send a request with the next sequence number and wait for its response.

        Returns the response whatever its command_status (a generic_nack included); raises
        SmppTimeoutError, SmppConnectionError, or SmppProtocolError for a mismatched response.
        """
        sequence_number = self._allocate_sequence()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence_number] = future
        try:
            async with asyncio.timeout(timeout_seconds):
                await self.send(dataclasses.replace(pdu, sequence_number=sequence_number))
                response = await future
        except TimeoutError:
            raise SmppTimeoutError(f"no response to {pdu.name} within {timeout_seconds:g}s") from None
        finally:
            self._pending.pop(sequence_number, None)
        _check_pairing(pdu, response)
        return response

    async def send(self, pdu: Pdu) -> None:
        frame = pdu.encode()  # an encoding error must surface before anything touches the socket
        async with self._write_lock:
            if self.closed or self._writer.is_closing():
                raise SmppConnectionError(f"connection to {self.peer} is closed")
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except OSError as exc:
                raise SmppConnectionError(f"write to {self.peer} failed: {exc}") from exc
        log.debug(
            "pdu sent",
            extra={"pdu": pdu.name, "sequence_number": pdu.sequence_number, "status": pdu.command_status},
        )

    async def close(self) -> None:
        """Close the socket, fail pending requests and wait for the reader to stop."""
        if not self._writer.is_closing():
            self._writer.close()
        task = self._reader_task
        if task is None:
            self._teardown()
        elif task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(task), _CLOSE_GRACE_SECONDS)
            except TimeoutError:
                self._writer.transport.abort()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def abort(self) -> None:
        """Drop the connection at once (a dead link: no point flushing)."""
        self._writer.transport.abort()

    # --- reading side ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await read_frame(self._reader, self._max_pdu_length)
                if frame is None:
                    log.info("peer closed the connection", extra={"peer": self.peer, "connection": self.name})
                    return
                if not await self._dispatch(frame):
                    return
        except FrameLengthError as exc:
            log.warning("unframeable input, closing", extra={"peer": self.peer, "error": str(exc)})
            await self._answer_undecodable(exc)
        except (SmppError, OSError) as exc:
            log.info("connection lost", extra={"peer": self.peer, "connection": self.name, "error": str(exc)})
        finally:
            self._teardown()

    async def _dispatch(self, frame: bytes) -> bool:
        """Handle one PDU; False when the connection should close."""
        try:
            pdu = decode_pdu(frame)
        except PduDecodeError as exc:
            log.warning("undecodable pdu", extra={"peer": self.peer, "error": str(exc)})
            await self._answer_undecodable(exc)
            return True
        log.debug(
            "pdu received",
            extra={"pdu": pdu.name, "sequence_number": pdu.sequence_number, "status": pdu.command_status},
        )
        if pdu.is_response:
            self._resolve(pdu)
            return True
        reply = await self._call_handler(pdu)
        await self.send(reply.response)
        if reply.after_sent is not None:
            self._spawn(reply.after_sent())
        return not reply.close

    async def _call_handler(self, pdu: Pdu) -> Reply:
        try:
            return await self._handler(pdu)
        except Exception:
            log.exception("request handler failed", extra={"pdu": pdu.name, "peer": self.peer})
            return Reply(error_response(pdu.command_id, pdu.sequence_number, CommandStatus.ESME_RSYSERR))

    async def _answer_undecodable(self, exc: PduDecodeError) -> None:
        sequence_number = exc.sequence_number or 0
        if exc.command_id is not None and exc.command_id & RESPONSE_BIT:
            # Never answer a response; fail the request it was meant for instead.
            future = self._pending.get(sequence_number)
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if isinstance(exc, UnknownCommandError | FrameLengthError) or exc.command_id is None:
            answer: Pdu = GenericNack(sequence_number=sequence_number, command_status=exc.status)
        else:
            answer = error_response(exc.command_id, sequence_number, exc.status)
        with contextlib.suppress(SmppConnectionError):  # the peer is gone: nothing left to tell it
            await self.send(answer)

    def _resolve(self, response: Pdu) -> None:
        future = self._pending.get(response.sequence_number)
        if future is None or future.done():
            # Typically the answer to a request that already timed out.
            log.warning(
                "response matches no pending request",
                extra={"pdu": response.name, "sequence_number": response.sequence_number, "peer": self.peer},
            )
            return
        future.set_result(response)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _allocate_sequence(self) -> int:
        while True:
            self._last_sequence = self._last_sequence % MAX_SEQUENCE_NUMBER + 1
            if self._last_sequence not in self._pending:
                return self._last_sequence

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except SmppError as exc:
                log.info("post-response work failed", extra={"peer": self.peer, "error": str(exc)})

        task = asyncio.create_task(run(), name=f"{self.name}-after-sent")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _teardown(self) -> None:
        self._closed.set()
        if not self._writer.is_closing():
            self._writer.close()
        for sequence_number, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    SmppConnectionError(f"connection to {self.peer} lost before response #{sequence_number}")
                )
        for task in list(self._background):
            task.cancel()


def _check_pairing(request: Pdu, response: Pdu) -> None:
    if response.command_id in (request.command_id | RESPONSE_BIT, CommandId.GENERIC_NACK):
        return
    raise SmppProtocolError(
        f"{request.name} answered with {command_name(response.command_id)} "
        f"({describe_status(response.command_status)})"
    )
