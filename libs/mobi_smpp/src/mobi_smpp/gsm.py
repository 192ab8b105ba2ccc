"""GSM 03.38 (3GPP TS 23.038) default alphabet, unpacked: one septet per octet.

SMPP carries data_coding 0x00 text unpacked (the SMSC packs septets for the air interface), so
a character is one octet, or two for the extension table (ESC 0x1B + code). Segment limits are
therefore counted in octets here, which equal septets.
"""

from __future__ import annotations

ESCAPE = 0x1B

# Index = septet value. 0x1B is the escape to the extension table, not a character.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION_TABLE = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_ENCODE: dict[str, bytes] = {
    char: bytes([code]) for code, char in enumerate(_BASIC_TABLE) if code != ESCAPE
} | {char: bytes([ESCAPE, code]) for char, code in _EXTENSION_TABLE.items()}
_DECODE_EXTENSION = {code: char for char, code in _EXTENSION_TABLE.items()}


class Gsm7Error(ValueError):
    """Text or bytes that are not in the GSM 03.38 default alphabet."""


def gsm7_char(char: str) -> bytes | None:
    """The octets for one character, or None when the default alphabet lacks it."""
    return _ENCODE.get(char)


def is_gsm7(text: str) -> bool:
    return all(char in _ENCODE for char in text)


def gsm7_encode(text: str) -> bytes:
    try:
        return b"".join(_ENCODE[char] for char in text)
    except KeyError as missing:
        raise Gsm7Error(f"{missing.args[0]!r} is not in the GSM 03.38 default alphabet") from None


def gsm7_decode(data: bytes) -> str:
    """Decode unpacked septets. Octets above 0x7F are not septets: Gsm7Error."""
    chars: list[str] = []
    escaped = False
    for position, octet in enumerate(data):
        if octet > 0x7F:
            raise Gsm7Error(f"octet 0x{octet:02X} at {position} is not a GSM 7-bit septet")
        if escaped:
            # 23.038 6.2.1.1: an unknown extension code shows the basic-table character.
            chars.append(_DECODE_EXTENSION.get(octet, _BASIC_TABLE[octet]))
            escaped = False
        elif octet == ESCAPE:
            escaped = True
        else:
            chars.append(_BASIC_TABLE[octet])
    if escaped:
        chars.append(" ")  # a dangling escape: 23.038 says display a space
    return "".join(chars)
