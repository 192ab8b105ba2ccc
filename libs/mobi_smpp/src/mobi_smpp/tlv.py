"""Optional parameters (TLVs): tag (2 octets), length (2 octets), value.

Unknown tags are kept, not rejected: SMPP v3.4 (3.2.4) requires a receiver to ignore optional
parameters it does not support, and keeping them lets a PDU be re-encoded unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .constants import TLV_FIXED_LENGTHS, CommandStatus
from .errors import PduEncodeError
from .wire import BodyReader, BodyWriter

_MAX_VALUE_LENGTH = 0xFFFF


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes

    @classmethod
    def uint(cls, tag: int, value: int, size: int) -> Tlv:
        if not 0 <= value < 1 << (8 * size):
            raise PduEncodeError(f"TLV 0x{tag:04X}: {value} does not fit {size} octet(s)")
        return cls(tag, value.to_bytes(size, "big"))

    @classmethod
    def cstring(cls, tag: int, value: str) -> Tlv:
        return cls(tag, value.encode("ascii") + b"\0")

    def as_uint(self) -> int:
        return int.from_bytes(self.value, "big")

    def as_cstring(self) -> str:
        return self.value.split(b"\0", 1)[0].decode("latin-1")


def find_tlv(tlvs: Iterable[Tlv], tag: int) -> Tlv | None:
    return next((tlv for tlv in tlvs if tlv.tag == tag), None)


def encode_tlvs(tlvs: Iterable[Tlv], writer: BodyWriter) -> None:
    for tlv in tlvs:
        if len(tlv.value) > _MAX_VALUE_LENGTH:
            raise PduEncodeError(f"TLV 0x{tlv.tag:04X}: value longer than {_MAX_VALUE_LENGTH} octets")
        writer.u16(tlv.tag, "tlv tag")
        writer.u16(len(tlv.value), "tlv length")
        writer.octets(tlv.value)


def decode_tlvs(reader: BodyReader) -> tuple[Tlv, ...]:
    tlvs: list[Tlv] = []
    while reader.remaining:
        if reader.remaining < 4:
            raise reader.error("truncated optional parameter header", CommandStatus.ESME_RINVOPTPARSTREAM)
        tag = int.from_bytes(reader.octets(2, "tlv tag"), "big")
        length = int.from_bytes(reader.octets(2, "tlv length"), "big")
        if reader.remaining < length:
            raise reader.error(
                f"optional parameter 0x{tag:04X} claims {length} octets, {reader.remaining} left",
                CommandStatus.ESME_RINVOPTPARSTREAM,
            )
        expected = TLV_FIXED_LENGTHS.get(tag)
        if expected is not None and length != expected:
            raise reader.error(
                f"optional parameter 0x{tag:04X} must be {expected} octet(s), got {length}",
                CommandStatus.ESME_RINVPARLEN,
            )
        tlvs.append(Tlv(tag, reader.octets(length, f"tlv 0x{tag:04X}")))
    return tuple(tlvs)
