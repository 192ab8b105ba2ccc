"""An asyncio ESME: keeps one bind to the SMSC alive and submits text messages over it.

    client = SmppClient(host="127.0.0.1", port=2775, system_id="mymobifone", password="secret")
    await client.start()                     # returns at once; binds (and re-binds) in the background
    ids = await client.submit("MobiFone", "84901234567", "Mã OTP của bạn là 123456")
    await client.close()                     # waits for in-flight submits, unbinds

A submit is sent at most once: the client never re-sends on its own, because a submit_sm whose
response was lost may already be on its way to the handset. Errors say whether a retry is
sensible (`SmppError.retryable`); the caller decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from types import TracebackType

from .backoff import Backoff
from .connection import Reply, SmppConnection
from .constants import CommandStatus, Npi, RegisteredDelivery, Ton, describe_status
from .errors import (
    BindError,
    ClientClosedError,
    SmppCommandError,
    SmppConnectionError,
    SmppError,
    SmppProtocolError,
)
from .pdu import (
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from .receipt import DeliveryReceipt, is_receipt, receipt_from_pdu
from .text import encode_message

log = logging.getLogger("mobi_smpp.client")

ReceiptHandler = Callable[[DeliveryReceipt], Awaitable[None]]

_UNBIND_TIMEOUT_SECONDS = 5.0


class BindMode(StrEnum):
    TRANSMITTER = "transmitter"
    TRANSCEIVER = "transceiver"  # also receives delivery receipts


def address_type(address: str) -> tuple[Ton, Npi]:
    """TON/NPI for an address as most SMSCs expect them.

    Letters mean an alphanumeric sender id ("MobiFone"); ten or more digits an international
    number without "+" (84901234567); fewer digits a short code (9090).
    """
    if not address.isdigit():
        return Ton.ALPHANUMERIC, Npi.UNKNOWN
    if len(address) >= 10:
        return Ton.INTERNATIONAL, Npi.ISDN
    return Ton.UNKNOWN, Npi.ISDN


def _without_plus(address: str) -> str:
    """`+84901234567` -> `84901234567`: with TON international the "+" is implied, not sent."""
    return address[1:] if address.startswith("+") and address[1:].isdigit() else address


def relative_validity_period(validity: timedelta) -> str:
    """SMPP relative time `YYMMDDhhmmss000R` (spec 7.1.1.2), for up to 99 days."""
    seconds = int(validity.total_seconds())
    if not 0 < seconds < 100 * 86400:
        raise ValueError("validity period must be between 1 second and 99 days")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


class SmppClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        system_id: str,
        password: str,
        system_type: str = "",
        bind_mode: BindMode = BindMode.TRANSCEIVER,
        request_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        enquire_link_interval: float = 30.0,
        window_size: int = 10,
        reconnect_initial_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        registered_delivery: bool = False,
        validity_period: timedelta | None = None,
        on_receipt: ReceiptHandler | None = None,
    ) -> None:
        if min(request_timeout, connect_timeout, enquire_link_interval) <= 0 or window_size < 1:
            raise ValueError("timeouts and intervals must be positive and window_size at least 1")
        self._host = host
        self._port = port
        bind_cls = BindTransceiver if bind_mode is BindMode.TRANSCEIVER else BindTransmitter
        self._bind_request = bind_cls(system_id=system_id, password=password, system_type=system_type)
        # Fail at construction, not at 3 a.m. on the first reconnect: credentials that SMPP v3.4
        # cannot carry (a password over 8 characters, say) raise PduEncodeError here.
        self._bind_request.encode()
        self._system_id = system_id
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._enquire_link_interval = enquire_link_interval
        self._backoff = Backoff(reconnect_initial_delay, reconnect_max_delay)
        self._registered_delivery = (
            RegisteredDelivery.ON_SUCCESS_OR_FAILURE if registered_delivery else RegisteredDelivery.NONE
        )
        self._validity_period = relative_validity_period(validity_period) if validity_period else ""
        self._on_receipt = on_receipt

        self._connection: SmppConnection | None = None
        self._bound = asyncio.Event()
        self._window = asyncio.Semaphore(window_size)
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._reference = random.randrange(256)
        self.last_error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start binding in the background; returns at once (an SMSC outage must not block startup)."""
        if self._closing:
            raise ClientClosedError("client is closed")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"smpp-client-{self._system_id}")

    @property
    def is_bound(self) -> bool:
        return self._connection is not None and not self._connection.closed

    async def wait_bound(self, timeout_seconds: float) -> None:
        """Wait until bound; SmppConnectionError after `timeout_seconds`."""
        await self._bound_connection(timeout_seconds)

    async def close(self) -> None:
        """Let in-flight submits finish (up to the request timeout), unbind, disconnect."""
        if self._closing:
            return
        self._closing = True
        connection = self._connection
        if connection is not None and not connection.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._request_timeout):
                    await self._drained.wait()
            await self._unbind(connection)
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if connection is not None:
            await connection.close()
        self._bound.set()  # wake submitters still waiting for a bind: they see the client closed

    async def __aenter__(self) -> SmppClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- submitting -----------------------------------------------------------------------------

    async def submit(self, source_addr: str, dest_addr: str, text: str) -> list[str]:
        """Send `text` as one SMS, or several concatenated parts; returns the SMSC message ids.

        Raises SmppCommandError (with `.status`, `.retryable`) when the SMSC refuses a part,
        SmppTimeoutError / SmppConnectionError (retryable) when it could not be reached or did
        not answer, ValueError for text or addresses SMPP cannot carry.
        """
        if self._closing:
            raise ClientClosedError("client is closed")
        if not text:
            raise ValueError("refusing to send an empty SMS")
        destination = _without_plus(dest_addr)
        if not destination:
            raise ValueError("destination address is empty")
        source_addr = _without_plus(source_addr)
        message = encode_message(text, self._next_reference())
        source_ton, source_npi = address_type(source_addr)
        dest_ton, dest_npi = address_type(destination)
        template = SubmitSm(
            source_addr_ton=source_ton,
            source_addr_npi=source_npi,
            source_addr=source_addr,
            dest_addr_ton=dest_ton,
            dest_addr_npi=dest_npi,
            destination_addr=destination,
            esm_class=message.esm_class,
            validity_period=self._validity_period,
            registered_delivery=self._registered_delivery,
            data_coding=message.data_coding,
        )
        template.encode()  # bad addresses fail here, before waiting for a bind
        return [
            await self._submit_part(dataclasses.replace(template, short_message=part))
            for part in message.parts
        ]

    async def _submit_part(self, pdu: SubmitSm) -> str:
        # The connection is looked up once a window slot is ours: one fetched before waiting
        # could have been replaced by a reconnect meanwhile.
        async with self._tracked(), self._window:
            connection = await self._bound_connection(self._request_timeout)
            response = await connection.request(pdu, self._request_timeout)
        if response.command_status != CommandStatus.ESME_ROK:
            raise SmppCommandError(pdu.command_id, response.command_status)
        if not isinstance(response, SubmitSmResp):
            raise SmppProtocolError(f"submit_sm answered with {response.name} and no error status")
        return response.message_id

    @contextlib.asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        """Count submits under way (queued or on the wire) so close() can wait for them."""
        self._in_flight += 1
        self._drained.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

    async def _bound_connection(self, timeout_seconds: float) -> SmppConnection:
        await self.start()
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._bound.wait()
        except TimeoutError:
            reason = f": {self.last_error}" if self.last_error else ""
            raise SmppConnectionError(
                f"not bound to SMSC {self._host}:{self._port} within {timeout_seconds:g}s{reason}"
            ) from None
        connection = self._connection
        if self._closing:
            raise ClientClosedError("client is closed")
        if connection is None or connection.closed:
            raise SmppConnectionError("connection to the SMSC was just lost")
        return connection

    def _next_reference(self) -> int:
        # Consecutive long messages to one handset must not share a reference, or the handset
        # would merge their parts.
        self._reference = (self._reference + 1) % 256
        return self._reference

    # --- connection upkeep ----------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closing:
            try:
                connection = await self._connect_and_bind()
            except (OSError, TimeoutError, SmppError) as exc:
                self._note_bind_failure(exc)
            except Exception as exc:
                # Whatever went wrong, this loop is the only thing that will ever bind again:
                # it must not die quietly and leave every later submit waiting in vain.
                log.exception("unexpected error while binding")
                self._note_bind_failure(exc)
            else:
                self._backoff.reset()
                self.last_error = None
                await self._serve(connection)
                if self._closing:
                    return
                self.last_error = "connection lost"
                log.warning(
                    "smsc connection lost, reconnecting", extra={"smsc": f"{self._host}:{self._port}"}
                )
            await asyncio.sleep(self._backoff.next_delay())

    async def _connect_and_bind(self) -> SmppConnection:
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(self._host, self._port)
        connection = SmppConnection(reader, writer, self._handle_request, name=f"esme-{self._system_id}")
        connection.start()
        try:
            response = await connection.request(self._bind_request, self._request_timeout)
            if response.command_status != CommandStatus.ESME_ROK:
                raise BindError(self._bind_request.command_id, response.command_status)
        except BaseException:
            await connection.close()
            raise
        log.info(
            "bound to smsc",
            extra={"smsc": connection.peer, "system_id": self._system_id, "bind": self._bind_request.name},
        )
        return connection

    def _note_bind_failure(self, exc: BaseException) -> None:
        # "ConnectionRefusedError: [Errno 111] ..." tells an on-call engineer more than the text alone.
        self.last_error = str(exc) if isinstance(exc, SmppError) else f"{type(exc).__name__}: {exc}"
        extra = {"smsc": f"{self._host}:{self._port}", "error": self.last_error}
        if isinstance(exc, BindError):
            # Wrong credentials do not fix themselves: shout, but keep trying (they may be rotated).
            log.error("smsc refused bind", extra=extra | {"status": describe_status(exc.status)})
        else:
            log.warning("smsc unreachable", extra=extra)

    async def _serve(self, connection: SmppConnection) -> None:
        """Publish the bound connection until it closes."""
        self._connection = connection
        self._bound.set()
        keepalive = asyncio.create_task(self._keepalive(connection), name="smpp-enquire-link")
        try:
            await connection.wait_closed()
        finally:
            self._bound.clear()
            self._connection = None
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)

    async def _keepalive(self, connection: SmppConnection) -> None:
        # A NAT or firewall silently dropping an idle TCP flow is only noticed by probing it.
        while True:
            await asyncio.sleep(self._enquire_link_interval)
            try:
                await connection.request(EnquireLink(), self._request_timeout)
            except SmppError as exc:
                log.warning("enquire_link failed, dropping connection", extra={"error": str(exc)})
                connection.abort()
                return

    async def _unbind(self, connection: SmppConnection) -> None:
        try:
            await connection.request(Unbind(), min(self._request_timeout, _UNBIND_TIMEOUT_SECONDS))
        except SmppError as exc:
            log.info("unbind not acknowledged", extra={"error": str(exc)})

    # --- requests from the SMSC -----------------------------------------------------------------

    async def _handle_request(self, pdu: Pdu) -> Reply:
        match pdu:
            case EnquireLink():
                return Reply(EnquireLinkResp(sequence_number=pdu.sequence_number))
            case DeliverSm():
                status = await self._on_deliver(pdu)
                return Reply(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=status))
            case Unbind():
                log.warning("smsc unbound the session, reconnecting")
                return Reply(UnbindResp(sequence_number=pdu.sequence_number), close=True)
            case _:
                return Reply(
                    GenericNack(
                        sequence_number=pdu.sequence_number, command_status=CommandStatus.ESME_RINVCMDID
                    )
                )

    async def _on_deliver(self, pdu: DeliverSm) -> int:
        if not is_receipt(pdu):
            log.info("mobile-originated message ignored", extra={"source": pdu.source_addr})
            return CommandStatus.ESME_ROK
        try:
            receipt = receipt_from_pdu(pdu)
        except ValueError:
            # Acknowledged anyway: refusing it would make the SMSC redeliver it forever.
            log.warning("unparseable delivery receipt acknowledged", extra={"source": pdu.source_addr})
            return CommandStatus.ESME_ROK
        if self._on_receipt is None:
            return CommandStatus.ESME_ROK
        try:
            await self._on_receipt(receipt)
        except Exception:
            log.exception("receipt handler failed", extra={"message_id": receipt.message_id})
            return CommandStatus.ESME_RX_T_APPN  # temporary: the SMSC will deliver it again
        return CommandStatus.ESME_ROK
