"""SMPP v3.4 numeric constants: command ids, command statuses, field values and TLV tags.

Values and names follow the SMPP v3.4 specification (issue 1.2), sections 5.1 and 5.3.
"""

from __future__ import annotations

from enum import IntEnum

INTERFACE_VERSION = 0x34
HEADER_LENGTH = 16
# Responses carry the request's command_id with the top bit set.
RESPONSE_BIT = 0x80000000
# Sequence numbers run 0x00000001..0x7FFFFFFF (spec 3.2); 0 is only used by a generic_nack
# answering a PDU whose sequence number could not be read.
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF
# The spec sets no upper bound; real SMSCs cap PDUs far lower. 64 KiB fits the largest
# message_payload a peer could legitimately send and stops a garbage length from making us
# buffer gigabytes.
DEFAULT_MAX_PDU_LENGTH = 65_536


class CommandId(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class CommandStatus(IntEnum):
    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


_STATUS_TEXT: dict[int, str] = {
    CommandStatus.ESME_ROK: "no error",
    CommandStatus.ESME_RINVMSGLEN: "message length is invalid",
    CommandStatus.ESME_RINVCMDLEN: "command length is invalid",
    CommandStatus.ESME_RINVCMDID: "invalid command id",
    CommandStatus.ESME_RINVBNDSTS: "incorrect bind status for given command",
    CommandStatus.ESME_RALYBND: "ESME already in bound state",
    CommandStatus.ESME_RSYSERR: "system error",
    CommandStatus.ESME_RINVSRCADR: "invalid source address",
    CommandStatus.ESME_RINVDSTADR: "invalid destination address",
    CommandStatus.ESME_RINVMSGID: "message id is invalid",
    CommandStatus.ESME_RBINDFAIL: "bind failed",
    CommandStatus.ESME_RINVPASWD: "invalid password",
    CommandStatus.ESME_RINVSYSID: "invalid system id",
    CommandStatus.ESME_RMSGQFUL: "message queue full",
    CommandStatus.ESME_RINVSERTYP: "invalid service type",
    CommandStatus.ESME_RINVESMCLASS: "invalid esm_class field data",
    CommandStatus.ESME_RSUBMITFAIL: "submit_sm or submit_multi failed",
    CommandStatus.ESME_RINVSYSTYP: "invalid system_type field",
    CommandStatus.ESME_RTHROTTLED: "throttling error (ESME has exceeded allowed message limits)",
    CommandStatus.ESME_RINVSCHED: "invalid scheduled delivery time",
    CommandStatus.ESME_RINVEXPIRY: "invalid message validity period",
    CommandStatus.ESME_RX_T_APPN: "ESME receiver temporary app error",
    CommandStatus.ESME_RX_P_APPN: "ESME receiver permanent app error",
    CommandStatus.ESME_RX_R_APPN: "ESME receiver reject message error",
    CommandStatus.ESME_RINVOPTPARSTREAM: "error in the optional part of the PDU body",
    CommandStatus.ESME_ROPTPARNOTALLWD: "optional parameter not allowed",
    CommandStatus.ESME_RINVPARLEN: "invalid parameter length",
    CommandStatus.ESME_RMISSINGOPTPARAM: "expected optional parameter missing",
    CommandStatus.ESME_RINVOPTPARAMVAL: "invalid optional parameter value",
    CommandStatus.ESME_RUNKNOWNERR: "unknown error",
}


def describe_status(status: int) -> str:
    """`0x00000058 ESME_RTHROTTLED (throttling error ...)`: for logs and error messages."""
    try:
        name = CommandStatus(status).name
    except ValueError:
        # Vendor-specific statuses (0x400-0x4FF) and future ones still need a readable form.
        return f"0x{status:08X} (unknown status)"
    text = _STATUS_TEXT.get(status)
    return f"0x{status:08X} {name}" + (f" ({text})" if text else "")


def command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08X}"


class DataCoding(IntEnum):
    """The data_coding values this package encodes or decodes."""

    DEFAULT = 0x00  # SMSC default alphabet: GSM 03.38, one septet per octet (unpacked)
    IA5 = 0x01  # IA5 / ASCII
    LATIN1 = 0x03  # ISO-8859-1
    UCS2 = 0x08  # ISO/IEC-10646 UCS-2, big-endian (sent as UTF-16BE by every modern SMSC)


class EsmClass:
    """esm_class bits (spec 5.2.12)."""

    MESSAGE_TYPE_MASK = 0x3C
    DELIVERY_RECEIPT = 0x04  # deliver_sm carries an SMSC delivery receipt
    UDHI = 0x40  # short_message starts with a User Data Header


class RegisteredDelivery:
    """registered_delivery bits (spec 5.2.17); bits 0-1 select the SMSC delivery receipt."""

    NONE = 0x00
    ON_SUCCESS_OR_FAILURE = 0x01
    ON_FAILURE = 0x02
    RECEIPT_MASK = 0x03


class Ton(IntEnum):
    UNKNOWN = 0x00
    INTERNATIONAL = 0x01
    NATIONAL = 0x02
    NETWORK_SPECIFIC = 0x03
    SUBSCRIBER_NUMBER = 0x04
    ALPHANUMERIC = 0x05
    ABBREVIATED = 0x06


class Npi(IntEnum):
    UNKNOWN = 0x00
    ISDN = 0x01  # E.163 / E.164
    DATA = 0x03
    TELEX = 0x04
    LAND_MOBILE = 0x06
    NATIONAL = 0x08
    PRIVATE = 0x09
    ERMES = 0x0A
    INTERNET = 0x0E
    WAP = 0x12


class MessageState(IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class Tag(IntEnum):
    """Optional parameter (TLV) tags used by this package (spec 5.3.2)."""

    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427


# Fixed value lengths of the TLVs above; a peer sending another length is answered
# ESME_RINVPARLEN rather than having its value silently mis-read.
TLV_FIXED_LENGTHS: dict[int, int] = {
    Tag.USER_MESSAGE_REFERENCE: 2,
    Tag.SOURCE_PORT: 2,
    Tag.DESTINATION_PORT: 2,
    Tag.SAR_MSG_REF_NUM: 2,
    Tag.SAR_TOTAL_SEGMENTS: 1,
    Tag.SAR_SEGMENT_SEQNUM: 1,
    Tag.SC_INTERFACE_VERSION: 1,
    Tag.NETWORK_ERROR_CODE: 3,
    Tag.MORE_MESSAGES_TO_SEND: 1,
    Tag.MESSAGE_STATE: 1,
}
