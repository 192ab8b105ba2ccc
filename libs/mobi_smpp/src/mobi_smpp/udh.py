"""Concatenated-SMS information: the User Data Header (3GPP TS 23.040 9.2.3.24) and SAR TLVs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .constants import Tag
from .tlv import Tlv, find_tlv

_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08
CONCAT_UDH_LENGTH = 6  # UDHL + IEI + IEDL + reference + total + sequence


class UdhError(ValueError):
    """A User Data Header that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Which part of which concatenated message a short message is."""

    reference: int
    total: int
    sequence: int  # 1-based

    def __post_init__(self) -> None:
        if not 1 <= self.sequence <= self.total:
            raise UdhError(f"part {self.sequence} of {self.total} is out of range")


def concat_udh(reference: int, total: int, sequence: int) -> bytes:
    """An 8-bit-reference concatenation header: 05 00 03 ref total seq."""
    return bytes([CONCAT_UDH_LENGTH - 1, _IEI_CONCAT_8BIT, 3, reference & 0xFF, total, sequence])


def split_udh(user_data: bytes) -> tuple[Concatenation | None, bytes]:
    """Split a short_message sent with esm_class UDHI into (concatenation info, text octets)."""
    if not user_data:
        raise UdhError("UDHI is set but the message is empty")
    header_length = user_data[0]
    if header_length + 1 > len(user_data):
        raise UdhError(f"UDH length {header_length} exceeds the {len(user_data)}-octet message")
    header, body = user_data[1 : header_length + 1], user_data[header_length + 1 :]
    return _find_concatenation(header), body


def _find_concatenation(header: bytes) -> Concatenation | None:
    position = 0
    while position < len(header):
        if position + 2 > len(header):
            raise UdhError("truncated information element")
        iei, length = header[position], header[position + 1]
        data = header[position + 2 : position + 2 + length]
        if len(data) != length:
            raise UdhError(f"information element 0x{iei:02X} is truncated")
        if iei == _IEI_CONCAT_8BIT and length == 3:
            return Concatenation(reference=data[0], total=data[1], sequence=data[2])
        if iei == _IEI_CONCAT_16BIT and length == 4:
            return Concatenation(reference=int.from_bytes(data[:2], "big"), total=data[2], sequence=data[3])
        position += 2 + length  # other elements (ports, national language tables) are skipped
    return None


def sar_concatenation(tlvs: Iterable[Tlv]) -> Concatenation | None:
    """Concatenation carried in sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs."""
    tlvs = tuple(tlvs)
    reference = find_tlv(tlvs, Tag.SAR_MSG_REF_NUM)
    total = find_tlv(tlvs, Tag.SAR_TOTAL_SEGMENTS)
    sequence = find_tlv(tlvs, Tag.SAR_SEGMENT_SEQNUM)
    if reference is None and total is None and sequence is None:
        return None
    if reference is None or total is None or sequence is None:
        raise UdhError("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum must come together")
    return Concatenation(reference=reference.as_uint(), total=total.as_uint(), sequence=sequence.as_uint())
