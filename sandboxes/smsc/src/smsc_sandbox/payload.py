"""What a submit_sm carries: its text octets, which part of a long message it is, and whether
the sandbox can decode it."""

from __future__ import annotations

from mobi_smpp import (
    CommandStatus,
    Concatenation,
    DataCoding,
    EsmClass,
    SubmitSm,
    Tag,
    UdhError,
    decode_text,
    sar_concatenation,
    split_udh,
)


class SubmitRejected(Exception):
    """A submit_sm the sandbox refuses, with the status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def split_payload(pdu: SubmitSm) -> tuple[Concatenation | None, bytes]:
    """The text octets of a submit_sm and, when it is one part of several, which part."""
    payload_tlv = pdu.tlv(Tag.MESSAGE_PAYLOAD)
    if payload_tlv is not None and pdu.short_message:
        raise SubmitRejected(CommandStatus.ESME_RINVMSGLEN, "both short_message and message_payload set")
    payload = payload_tlv.value if payload_tlv is not None else pdu.short_message
    try:
        if pdu.esm_class & EsmClass.UDHI:
            return split_udh(payload)
        return sar_concatenation(pdu.tlvs), payload
    except UdhError as exc:
        raise SubmitRejected(CommandStatus.ESME_RINVESMCLASS, f"bad concatenation header: {exc}") from None


def check_text(data_coding: int, payload: bytes) -> None:
    """Refuse a part that can never decode. UCS-2 is only checked for whole code units: a
    surrogate pair may legitimately straddle two parts."""
    try:
        if data_coding == DataCoding.UCS2:
            if len(payload) % 2:
                raise ValueError("odd number of UCS-2 octets")
        else:
            decode_text(data_coding, payload)
    except ValueError as exc:
        raise SubmitRejected(CommandStatus.ESME_RSUBMITFAIL, f"undecodable text: {exc}") from None
