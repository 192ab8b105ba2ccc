"""Primitive SMPP field encoding: big-endian integers, C-octet strings and octet strings."""

from __future__ import annotations

from .constants import CommandStatus
from .errors import PduDecodeError, PduEncodeError


class BodyWriter:
    """Appends fields to a PDU body, refusing values SMPP v3.4 cannot carry."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def u8(self, value: int, field: str) -> None:
        self._uint(value, 1, field)

    def u16(self, value: int, field: str) -> None:
        self._uint(value, 2, field)

    def u32(self, value: int, field: str) -> None:
        self._uint(value, 4, field)

    def cstring(self, value: str, max_length: int, field: str) -> None:
        """A C-octet string: ASCII then NUL. `max_length` counts the NUL, as the spec does."""
        try:
            encoded = value.encode("ascii")
        except UnicodeEncodeError:
            raise PduEncodeError(f"{field}: SMPP C-octet strings must be ASCII, got {value!r}") from None
        if b"\0" in encoded:
            raise PduEncodeError(f"{field}: must not contain NUL")
        if len(encoded) + 1 > max_length:
            raise PduEncodeError(
                f"{field}: SMPP v3.4 allows at most {max_length - 1} characters, got {len(encoded)}"
            )
        self._buffer += encoded + b"\0"

    def octets(self, value: bytes) -> None:
        self._buffer += value

    def getvalue(self) -> bytes:
        return bytes(self._buffer)

    def _uint(self, value: int, size: int, field: str) -> None:
        if not 0 <= value < 1 << (8 * size):
            raise PduEncodeError(f"{field}: {value} does not fit {size} octet(s)")
        self._buffer += value.to_bytes(size, "big")


class BodyReader:
    """Reads fields off a PDU body; every error names the field and carries an answer status."""

    def __init__(self, data: bytes, *, command_id: int, sequence_number: int, context: str) -> None:
        self._data = data
        self._pos = 0
        self._command_id = command_id
        self._sequence_number = sequence_number
        self._context = context

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def u8(self, field: str) -> int:
        return self._take(1, field)[0]

    def cstring(self, field: str, max_length: int, too_long_status: int) -> str:
        window = self._data[self._pos : self._pos + max_length]
        end = window.find(b"\0")
        if end < 0:
            if len(window) < max_length:
                raise self.error(f"{field} is not NUL-terminated before the body ends")
            raise self.error(f"{field} is longer than {max_length - 1} characters", too_long_status)
        self._pos += end + 1
        # latin-1 maps every octet: a stray non-ASCII octet in an id must not make a whole
        # PDU undecodable, and the original bytes stay recoverable.
        return window[:end].decode("latin-1")

    def octets(self, length: int, field: str) -> bytes:
        return self._take(length, field)

    def error(self, message: str, status: int = CommandStatus.ESME_RINVCMDLEN) -> PduDecodeError:
        return PduDecodeError(
            f"{self._context}: {message}",
            status,
            command_id=self._command_id,
            sequence_number=self._sequence_number,
        )

    def _take(self, length: int, field: str) -> bytes:
        if self.remaining < length:
            raise self.error(f"body ends before {field} ({length} octet(s) needed, {self.remaining} left)")
        chunk = self._data[self._pos : self._pos + length]
        self._pos += length
        return chunk
