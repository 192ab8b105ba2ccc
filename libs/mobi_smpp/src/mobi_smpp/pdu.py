"""SMPP v3.4 PDUs and their binary codec.

Each PDU is a frozen dataclass whose mandatory body fields are declared, in wire order, with
their wire type (`_u8`, `_cstring`, `_short_message`). One generic encoder/decoder walks those
declarations, so the layout of each PDU is read in one place and matches the spec tables.
Optional parameters (TLVs) follow the mandatory fields in `tlvs`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

from .constants import (
    HEADER_LENGTH,
    INTERFACE_VERSION,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
    command_name,
)
from .errors import PduDecodeError, PduEncodeError, UnknownCommandError
from .tlv import Tlv, decode_tlvs, encode_tlvs, find_tlv
from .wire import BodyReader, BodyWriter

_WIRE = "smpp_wire"
_MAX_SHORT_MESSAGE = 254  # sm_length is one octet; the spec caps short_message at 254


class PduHeader(NamedTuple):
    command_length: int
    command_id: int
    command_status: int
    sequence_number: int


def decode_header(data: bytes) -> PduHeader:
    if len(data) < HEADER_LENGTH:
        raise PduDecodeError(
            f"PDU header needs {HEADER_LENGTH} octets, got {len(data)}", CommandStatus.ESME_RINVCMDLEN
        )
    return PduHeader(*(int.from_bytes(data[i : i + 4], "big") for i in range(0, HEADER_LENGTH, 4)))


# --- wire types of mandatory fields -------------------------------------------------------------


class _WireType(Protocol):
    def write(self, writer: BodyWriter, name: str, value: Any) -> None: ...

    def read(self, reader: BodyReader, name: str) -> Any: ...


class _U8:
    def write(self, writer: BodyWriter, name: str, value: Any) -> None:
        writer.u8(value, name)

    def read(self, reader: BodyReader, name: str) -> Any:
        return reader.u8(name)


@dataclass(frozen=True, slots=True)
class _CString:
    max_length: int  # including the NUL, as the spec tables give it
    too_long_status: int

    def write(self, writer: BodyWriter, name: str, value: Any) -> None:
        writer.cstring(value, self.max_length, name)

    def read(self, reader: BodyReader, name: str) -> Any:
        return reader.cstring(name, self.max_length, self.too_long_status)


class _ShortMessage:
    """sm_length (one octet) followed by that many octets of short_message."""

    def write(self, writer: BodyWriter, name: str, value: Any) -> None:
        if len(value) > _MAX_SHORT_MESSAGE:
            raise PduEncodeError(f"{name}: at most {_MAX_SHORT_MESSAGE} octets, got {len(value)}")
        writer.u8(len(value), "sm_length")
        writer.octets(value)

    def read(self, reader: BodyReader, name: str) -> Any:
        return reader.octets(reader.u8("sm_length"), name)


def _u8(default: int = 0) -> int:
    return field(default=default, metadata={_WIRE: _U8()})


def _cstring(max_length: int, too_long_status: int = CommandStatus.ESME_RINVPARLEN) -> str:
    return field(default="", metadata={_WIRE: _CString(max_length, too_long_status)})


def _short_message() -> bytes:
    return field(default=b"", metadata={_WIRE: _ShortMessage()})


# --- PDUs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Pdu:
    command_id: ClassVar[CommandId]
    # SMPP v3.4 4.1.2/4.4.2: these responses carry no body when command_status is non-zero.
    omit_body_on_error: ClassVar[bool] = False

    sequence_number: int = 0
    command_status: int = CommandStatus.ESME_ROK
    tlvs: tuple[Tlv, ...] = ()

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        return command_name(self.command_id)

    def tlv(self, tag: int) -> Tlv | None:
        return find_tlv(self.tlvs, tag)

    def encode(self) -> bytes:
        return encode_pdu(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class _BindRequest(Pdu):
    system_id: str = _cstring(16, CommandStatus.ESME_RINVSYSID)
    password: str = _cstring(9, CommandStatus.ESME_RINVPASWD)
    system_type: str = _cstring(13, CommandStatus.ESME_RINVSYSTYP)
    interface_version: int = _u8(INTERFACE_VERSION)
    addr_ton: int = _u8()
    addr_npi: int = _u8()
    address_range: str = _cstring(41)


@dataclass(frozen=True, kw_only=True, slots=True)
class BindTransmitter(_BindRequest):
    command_id = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, kw_only=True, slots=True)
class BindReceiver(_BindRequest):
    command_id = CommandId.BIND_RECEIVER


@dataclass(frozen=True, kw_only=True, slots=True)
class BindTransceiver(_BindRequest):
    command_id = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, kw_only=True, slots=True)
class _BindResponse(Pdu):
    omit_body_on_error = True
    system_id: str = _cstring(16, CommandStatus.ESME_RINVSYSID)


@dataclass(frozen=True, kw_only=True, slots=True)
class BindTransmitterResp(_BindResponse):
    command_id = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, kw_only=True, slots=True)
class BindReceiverResp(_BindResponse):
    command_id = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, kw_only=True, slots=True)
class BindTransceiverResp(_BindResponse):
    command_id = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, kw_only=True, slots=True)
class _ShortMessagePdu(Pdu):
    """The common layout of submit_sm and deliver_sm (spec 4.4.1 and 4.6.1)."""

    service_type: str = _cstring(6, CommandStatus.ESME_RINVSERTYP)
    source_addr_ton: int = _u8()
    source_addr_npi: int = _u8()
    source_addr: str = _cstring(21, CommandStatus.ESME_RINVSRCADR)
    dest_addr_ton: int = _u8()
    dest_addr_npi: int = _u8()
    destination_addr: str = _cstring(21, CommandStatus.ESME_RINVDSTADR)
    esm_class: int = _u8()
    protocol_id: int = _u8()
    priority_flag: int = _u8()
    schedule_delivery_time: str = _cstring(17, CommandStatus.ESME_RINVSCHED)
    validity_period: str = _cstring(17, CommandStatus.ESME_RINVEXPIRY)
    registered_delivery: int = _u8()
    replace_if_present_flag: int = _u8()
    data_coding: int = _u8()
    sm_default_msg_id: int = _u8()
    short_message: bytes = _short_message()


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitSm(_ShortMessagePdu):
    command_id = CommandId.SUBMIT_SM


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliverSm(_ShortMessagePdu):
    command_id = CommandId.DELIVER_SM


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitSmResp(Pdu):
    command_id = CommandId.SUBMIT_SM_RESP
    omit_body_on_error = True
    message_id: str = _cstring(65, CommandStatus.ESME_RINVMSGID)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliverSmResp(Pdu):
    command_id = CommandId.DELIVER_SM_RESP
    message_id: str = _cstring(65, CommandStatus.ESME_RINVMSGID)  # unused: always empty


@dataclass(frozen=True, kw_only=True, slots=True)
class EnquireLink(Pdu):
    command_id = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, kw_only=True, slots=True)
class EnquireLinkResp(Pdu):
    command_id = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, kw_only=True, slots=True)
class Unbind(Pdu):
    command_id = CommandId.UNBIND


@dataclass(frozen=True, kw_only=True, slots=True)
class UnbindResp(Pdu):
    command_id = CommandId.UNBIND_RESP


@dataclass(frozen=True, kw_only=True, slots=True)
class GenericNack(Pdu):
    command_id = CommandId.GENERIC_NACK


_PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        EnquireLink,
        EnquireLinkResp,
        Unbind,
        UnbindResp,
        GenericNack,
    )
}


def error_response(command_id: int, sequence_number: int, status: int) -> Pdu:
    """The response a peer expects to request `command_id`, carrying an error `status`.

    A request whose response type this package does not implement gets a generic_nack.
    """
    response_cls = _PDU_CLASSES.get(command_id | RESPONSE_BIT, GenericNack)
    return response_cls(sequence_number=sequence_number, command_status=status)


# --- codec --------------------------------------------------------------------------------------


def _declared_fields(cls: type[Pdu]) -> tuple[tuple[str, _WireType], ...]:
    return tuple((f.name, f.metadata[_WIRE]) for f in dataclasses.fields(cls) if _WIRE in f.metadata)


# Mandatory fields of each PDU class, in wire order (computed once, not per PDU).
_WIRE_FIELDS = {cls: _declared_fields(cls) for cls in _PDU_CLASSES.values()}


def encode_pdu(pdu: Pdu) -> bytes:
    """The PDU's bytes on the wire, header included. Raises PduEncodeError."""
    writer = BodyWriter()
    if not (pdu.omit_body_on_error and pdu.command_status != CommandStatus.ESME_ROK):
        for name, wire in _WIRE_FIELDS[type(pdu)]:
            wire.write(writer, name, getattr(pdu, name))
        encode_tlvs(pdu.tlvs, writer)
    body = writer.getvalue()
    header = BodyWriter()
    header.u32(HEADER_LENGTH + len(body), "command_length")
    header.u32(pdu.command_id, "command_id")
    header.u32(pdu.command_status, "command_status")
    header.u32(pdu.sequence_number, "sequence_number")
    return header.getvalue() + body


def decode_pdu(frame: bytes) -> Pdu:
    """Decode one complete PDU (as read by `read_frame`). Raises PduDecodeError."""
    header = decode_header(frame)
    if header.command_length != len(frame):
        raise PduDecodeError(
            f"command_length {header.command_length} does not match the {len(frame)} octets received",
            CommandStatus.ESME_RINVCMDLEN,
            command_id=header.command_id,
            sequence_number=header.sequence_number,
        )
    cls = _PDU_CLASSES.get(header.command_id)
    if cls is None:
        raise UnknownCommandError(
            f"unsupported command_id 0x{header.command_id:08X}",
            CommandStatus.ESME_RINVCMDID,
            command_id=header.command_id,
            sequence_number=header.sequence_number,
        )
    body = frame[HEADER_LENGTH:]
    common: dict[str, Any] = {
        "sequence_number": header.sequence_number,
        "command_status": header.command_status,
    }
    if not body and header.command_status != CommandStatus.ESME_ROK and cls.command_id & RESPONSE_BIT:
        return cls(**common)  # an error response without body, as the spec allows
    reader = BodyReader(
        body,
        command_id=header.command_id,
        sequence_number=header.sequence_number,
        context=command_name(header.command_id),
    )
    values = {name: wire.read(reader, name) for name, wire in _WIRE_FIELDS[cls]}
    return cls(**common, **values, tlvs=decode_tlvs(reader))
