"""Text to short messages and back: alphabet choice, segmentation and decoding.

GSM 03.38 is used whenever every character fits it (160 characters in one SMS); anything
else, Vietnamese diacritics included, goes as UCS-2 (70 characters). Longer texts are split
into parts carrying an 8-bit-reference concatenation UDH: 153 GSM septets or 67 UCS-2
characters per part. Splits never cut a GSM escape sequence or a UTF-16 surrogate pair, so
every part decodes on its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .constants import DataCoding, EsmClass
from .errors import MessageTooLongError
from .gsm import gsm7_char, gsm7_decode
from .udh import CONCAT_UDH_LENGTH, concat_udh

SINGLE_SMS_OCTETS = 140  # 160 septets packed, or 70 UCS-2 characters
GSM7_SINGLE_SEPTETS = 160
GSM7_PART_SEPTETS = 153  # 160 minus the 6-octet UDH (7 septets once packed)
UCS2_PART_OCTETS = SINGLE_SMS_OCTETS - CONCAT_UDH_LENGTH  # 134 octets: 67 characters
MAX_PARTS = 255


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """What to put in each submit_sm for one text."""

    data_coding: DataCoding
    esm_class: int
    parts: tuple[bytes, ...]  # short_message octets, UDH included when concatenated


def encode_message(text: str, reference: int) -> EncodedMessage:
    """Encode `text` for SMPP; `reference` (0-255) ties the parts of a long message together."""
    # NFC first: decomposed Vietnamese (base letter + combining marks) would cost up to three
    # UCS-2 characters per letter and render badly on some handsets.
    text = unicodedata.normalize("NFC", text)
    units = _gsm7_units(text)
    if units is not None:
        data_coding, single_limit, part_limit = DataCoding.DEFAULT, GSM7_SINGLE_SEPTETS, GSM7_PART_SEPTETS
    else:
        units = [char.encode("utf-16-be") for char in text]
        data_coding, single_limit, part_limit = DataCoding.UCS2, SINGLE_SMS_OCTETS, UCS2_PART_OCTETS
    if sum(map(len, units)) <= single_limit:
        return EncodedMessage(data_coding, 0, (b"".join(units),))
    chunks = _split(units, part_limit)
    if len(chunks) > MAX_PARTS:
        raise MessageTooLongError(
            f"text needs {len(chunks)} SMS parts; at most {MAX_PARTS} can be concatenated"
        )
    parts = tuple(
        concat_udh(reference, len(chunks), number) + chunk for number, chunk in enumerate(chunks, start=1)
    )
    return EncodedMessage(data_coding, EsmClass.UDHI, parts)


def decode_text(data_coding: int, payload: bytes) -> str:
    """Decode short_message octets (UDH already removed). Raises ValueError when they are invalid."""
    match data_coding:
        case DataCoding.DEFAULT:
            return gsm7_decode(payload)
        case DataCoding.IA5:
            return payload.decode("ascii")
        case DataCoding.LATIN1:
            return payload.decode("latin-1")
        case DataCoding.UCS2:
            return payload.decode("utf-16-be")
        case _:
            raise ValueError(f"data_coding 0x{data_coding:02X} is not supported")


def _gsm7_units(text: str) -> list[bytes] | None:
    units: list[bytes] = []
    for char in text:
        encoded = gsm7_char(char)
        if encoded is None:
            return None
        units.append(encoded)
    return units


def _split(units: list[bytes], limit: int) -> list[bytes]:
    """Greedily pack whole characters into chunks of at most `limit` octets."""
    chunks: list[bytes] = []
    current = bytearray()
    for unit in units:
        if len(current) + len(unit) > limit:
            chunks.append(bytes(current))
            current = bytearray()
        current += unit
    chunks.append(bytes(current))
    return chunks
