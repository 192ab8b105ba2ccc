"""The SMSC side of one ESME connection: bind state, submit_sm handling, delivery receipts."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from mobi_smpp import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandStatus,
    Concatenation,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    RegisteredDelivery,
    Reply,
    SmppConnection,
    SmppError,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_text,
    describe_status,
    error_response,
)

from .metrics import SmscMetrics
from .payload import SubmitRejected, check_text, split_payload
from .reassembly import Assembled, Part, Reassembler
from .receipts import receipt_for
from .settings import SmscSettings
from .store import MessageRecord, MessageStore
from .throttle import TokenBucket

log = logging.getLogger("smsc_sandbox.session")

_REQUEST_TIMEOUT_SECONDS = 10.0
_SMSC_SYSTEM_ID = "SMSCSANDBOX"


class BindState(Enum):
    OPEN = "open"
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"


_BindResp = type[BindTransmitterResp] | type[BindReceiverResp] | type[BindTransceiverResp]
_BIND_RESULTS: dict[type[Pdu], tuple[BindState, _BindResp]] = {
    BindTransmitter: (BindState.TRANSMITTER, BindTransmitterResp),
    BindReceiver: (BindState.RECEIVER, BindReceiverResp),
    BindTransceiver: (BindState.TRANSCEIVER, BindTransceiverResp),
}


@dataclass(frozen=True, slots=True)
class SharedState:
    """What every session of one sandbox shares."""

    settings: SmscSettings
    store: MessageStore
    metrics: SmscMetrics
    reassembler: Reassembler
    throttle: TokenBucket | None


class SmscSession:
    def __init__(self, shared: SharedState) -> None:
        self._shared = shared
        self._settings = shared.settings
        self._metrics = shared.metrics
        self.state = BindState.OPEN
        self.system_id = ""
        self._connection: SmppConnection | None = None

    def attach(self, connection: SmppConnection) -> None:
        self._connection = connection

    @property
    def peer(self) -> str:
        return self._connection.peer if self._connection else "?"

    @property
    def bound(self) -> bool:
        return self.state is not BindState.OPEN

    def closed(self) -> None:
        if self.bound:
            self._metrics.bound_sessions.dec()
            self.state = BindState.OPEN
        log.info("session closed", extra={"peer": self.peer, "system_id": self.system_id})

    async def handle(self, pdu: Pdu) -> Reply:
        match pdu:
            case BindTransmitter() | BindReceiver() | BindTransceiver():
                return Reply(self._bind(pdu))
            case SubmitSm():
                return self._submit(pdu)
            case EnquireLink():
                return Reply(EnquireLinkResp(sequence_number=pdu.sequence_number))
            case Unbind():
                return Reply(self._unbind(pdu), close=True)
            case _:
                return Reply(self._reject(pdu, CommandStatus.ESME_RINVCMDID, "command not supported"))

    # --- bind / unbind --------------------------------------------------------------------------

    def _bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver) -> Pdu:
        state, response_cls = _BIND_RESULTS[type(pdu)]
        bind_type = state.value
        if self.bound:
            self._metrics.binds.labels(bind_type, "already_bound").inc()
            return self._reject(pdu, CommandStatus.ESME_RALYBND, "already bound")
        if not self._credentials_match(pdu.system_id, pdu.password):
            self._metrics.binds.labels(bind_type, "refused").inc()
            log.warning("bind", extra={"result": "refused", "system_id": pdu.system_id, "peer": self.peer})
            # One status for a wrong id or password: do not tell a prober which one it got right.
            return self._reject(pdu, CommandStatus.ESME_RBINDFAIL, "bad credentials")
        self.state, self.system_id = state, pdu.system_id
        self._metrics.binds.labels(bind_type, "ok").inc()
        self._metrics.bound_sessions.inc()
        log.info(
            "bind",
            extra={"result": "ok", "bind_type": bind_type, "system_id": pdu.system_id, "peer": self.peer},
        )
        return response_cls(sequence_number=pdu.sequence_number, system_id=_SMSC_SYSTEM_ID)

    def _credentials_match(self, system_id: str, password: str) -> bool:
        # compare_digest: response time must not reveal how much of the password was right.
        expected_password = self._settings.password.get_secret_value().encode()
        id_ok = hmac.compare_digest(system_id.encode(), self._settings.system_id.encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password)
        return id_ok and password_ok

    def _unbind(self, pdu: Unbind) -> Pdu:
        if not self.bound:
            return self._reject(pdu, CommandStatus.ESME_RINVBNDSTS, "unbind while not bound")
        self._metrics.unbinds.inc()
        self._metrics.bound_sessions.dec()
        log.info("unbind", extra={"system_id": self.system_id, "peer": self.peer})
        self.state = BindState.OPEN
        return UnbindResp(sequence_number=pdu.sequence_number)

    # --- submit_sm ------------------------------------------------------------------------------

    def _submit(self, pdu: SubmitSm) -> Reply:
        message_id = secrets.token_hex(8)
        try:
            self._admit(pdu)
            concatenation, payload = split_payload(pdu)
            check_text(pdu.data_coding, payload)
            completed = self._collect(pdu, concatenation, Part(payload, message_id))
            text = _decode_whole(pdu.data_coding, completed) if completed else None
        except SubmitRejected as rejected:
            return Reply(self._reject(pdu, rejected.status, str(rejected)))
        self._metrics.submits.inc()
        log.info(
            "submit_sm",
            extra={
                "message_id": message_id,
                "system_id": self.system_id,
                "destination": pdu.destination_addr,
                "octets": len(payload),
                "part": concatenation.sequence if concatenation else 1,
                "parts": concatenation.total if concatenation else 1,
            },
        )
        if completed is not None and text is not None:
            self._store(pdu, text, completed.message_ids)
        response = SubmitSmResp(sequence_number=pdu.sequence_number, message_id=message_id)
        wants_receipt = pdu.registered_delivery & RegisteredDelivery.RECEIPT_MASK == (
            RegisteredDelivery.ON_SUCCESS_OR_FAILURE
        )
        if wants_receipt and self.state is BindState.TRANSCEIVER:
            return Reply(response, after_sent=lambda: self._send_receipt(pdu, message_id))
        return Reply(response)

    def _admit(self, pdu: SubmitSm) -> None:
        if self.state not in (BindState.TRANSMITTER, BindState.TRANSCEIVER):
            raise SubmitRejected(
                CommandStatus.ESME_RINVBNDSTS, "submit_sm needs a transmitter or transceiver bind"
            )
        throttle = self._shared.throttle
        if throttle is not None and not throttle.try_acquire():
            raise SubmitRejected(CommandStatus.ESME_RTHROTTLED, "over the submit rate limit")

    def _collect(self, pdu: SubmitSm, concatenation: Concatenation | None, part: Part) -> Assembled | None:
        """The whole message once this part completes it; None while parts are missing."""
        if concatenation is None or concatenation.total == 1:
            return Assembled(part.payload, [part.message_id])
        key = (
            self.system_id,
            pdu.source_addr,
            pdu.destination_addr,
            concatenation.reference,
            concatenation.total,
            pdu.data_coding,
        )
        return self._shared.reassembler.add(key, concatenation, part)

    def _store(self, pdu: SubmitSm, text: str, message_ids: list[str]) -> None:
        record = MessageRecord(
            id=message_ids[0],
            message_ids=message_ids,
            source=pdu.source_addr,
            destination=pdu.destination_addr,
            text=text,
            data_coding=pdu.data_coding,
            parts=len(message_ids),
            received_at=datetime.now(UTC),
            system_id=self.system_id,
        )
        self._shared.store.add(record)
        self._metrics.messages.labels(f"0x{pdu.data_coding:02X}").inc()
        log.info(
            "message stored",
            extra={
                "message_id": record.id,
                "destination": record.destination,
                "parts": record.parts,
                "text_length": len(text),
                "data_coding": record.data_coding,
            },
        )

    # --- delivery receipts ----------------------------------------------------------------------

    async def _send_receipt(self, submitted: SubmitSm, message_id: str) -> None:
        if self._connection is None:
            return
        deliver = receipt_for(submitted, message_id)
        try:
            response = await self._connection.request(deliver, _REQUEST_TIMEOUT_SECONDS)
        except SmppError as exc:
            self._metrics.receipts.labels("failed").inc()
            log.warning(
                "delivery receipt not acknowledged", extra={"message_id": message_id, "error": str(exc)}
            )
            return
        result = "acknowledged" if response.command_status == CommandStatus.ESME_ROK else "refused"
        self._metrics.receipts.labels(result).inc()
        log.info("delivery receipt", extra={"message_id": message_id, "result": result})

    async def keep_alive(self, interval: float) -> None:
        """Probe the ESME with enquire_link; drop it when it stops answering."""
        while self._connection is not None and not self._connection.closed:
            await asyncio.sleep(interval)
            try:
                await self._connection.request(EnquireLink(), _REQUEST_TIMEOUT_SECONDS)
            except SmppError as exc:
                self._metrics.enquire_links.labels("unanswered").inc()
                log.warning(
                    "enquire_link unanswered, dropping session", extra={"peer": self.peer, "error": str(exc)}
                )
                self._connection.abort()
                return
            self._metrics.enquire_links.labels("answered").inc()

    # --- helpers --------------------------------------------------------------------------------

    def _reject(self, pdu: Pdu, status: int, reason: str) -> Pdu:
        self._metrics.rejects.labels(pdu.name, CommandStatus(status).name).inc()
        log.info(
            "rejected",
            extra={"pdu": pdu.name, "status": describe_status(status), "reason": reason, "peer": self.peer},
        )
        if status == CommandStatus.ESME_RINVCMDID:
            return GenericNack(sequence_number=pdu.sequence_number, command_status=status)
        return error_response(pdu.command_id, pdu.sequence_number, status)


def _decode_whole(data_coding: int, assembled: Assembled) -> str:
    try:
        return decode_text(data_coding, assembled.payload)
    except ValueError as exc:
        # Every part passed on its own; only the joined octets fail (a character split badly).
        raise SubmitRejected(CommandStatus.ESME_RSUBMITFAIL, f"parts do not decode together: {exc}") from None
