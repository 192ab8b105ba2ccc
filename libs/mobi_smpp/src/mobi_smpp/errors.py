"""Exceptions raised by mobi_smpp.

Every error is an `SmppError` with a `retryable` flag, so a caller (the OTP sender) can decide
between "try again shortly" and "give up and tell the user" without knowing SMPP statuses.
"""

from __future__ import annotations

from .constants import CommandStatus, command_name, describe_status

# Statuses that mean "not now" rather than "never": the same submit can succeed later.
RETRYABLE_STATUSES: frozenset[int] = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class SmppError(Exception):
    """Base class of every error raised by this package."""

    retryable: bool = False


class SmppProtocolError(SmppError):
    """The peer broke the protocol (malformed PDU, unexpected response)."""


class PduDecodeError(SmppProtocolError):
    """Bytes received do not form a valid SMPP v3.4 PDU.

    `status` is the command_status to answer the peer with; `command_id` and `sequence_number`
    are known whenever the 16-octet header could be read, so the answer can be correlated.
    """

    def __init__(
        self,
        message: str,
        status: int,
        *,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number


class UnknownCommandError(PduDecodeError):
    """The command_id is not one this package implements: answer with generic_nack."""


class FrameLengthError(PduDecodeError):
    """command_length is out of range: the byte stream cannot be re-synchronised."""


class PduEncodeError(SmppError, ValueError):
    """A PDU field does not fit SMPP v3.4 (too long, not ASCII, out of range)."""


class MessageTooLongError(SmppError, ValueError):
    """The text needs more than 255 concatenated parts."""


class SmppCommandError(SmppError):
    """The SMSC answered a request with a non-zero command_status."""

    def __init__(self, command_id: int, status: int) -> None:
        self.command_id = command_id
        self.status = status
        self.retryable = status in RETRYABLE_STATUSES
        super().__init__(f"{command_name(command_id)} refused: {describe_status(status)}")


class BindError(SmppCommandError):
    """The SMSC refused the bind (wrong credentials, not allowed, already bound)."""


class SmppConnectionError(SmppError):
    """Not bound to the SMSC, or the connection was lost while waiting for a response.

    Retryable, but when raised after a submit_sm was written the SMSC may already have accepted
    it: a retry can deliver the message twice.
    """

    retryable = True


class ClientClosedError(SmppConnectionError):
    """The client was closed; it will not reconnect."""

    retryable = False


class SmppTimeoutError(SmppError):
    """No response within the request timeout.

    Retryable with the same caveat as SmppConnectionError: the SMSC may have accepted the PDU.
    """

    retryable = True
