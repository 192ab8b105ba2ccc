"""PDU codec: byte-exact against smpplib (an independent implementation), round-trips, strictness."""

from __future__ import annotations

from typing import Any

import pytest
from smpplib import smpp as smpplib_smpp
from smpplib.client import SimpleSequenceGenerator

from mobi_smpp import (
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    PduDecodeError,
    PduEncodeError,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
    UnknownCommandError,
    decode_pdu,
    error_response,
)


def smpplib_bytes(command: str, sequence: int, **fields: Any) -> bytes:
    pdu = smpplib_smpp.make_pdu(command, client=SimpleSequenceGenerator(), **fields)
    pdu.sequence = sequence  # smpplib ignores a `sequence` keyword once its generator has started
    data: bytes = pdu.generate()
    return data


def smpplib_parse(data: bytes) -> Any:
    return smpplib_smpp.parse_pdu(data, client=SimpleSequenceGenerator(), allow_unknown_opt_params=True)


OTP_UCS2 = "Mã OTP: 123456".encode("utf-16-be")
RECEIPT = b"id:5f1c0a sub:001 dlvrd:001 submit date:2501011200 done date:2501011200 stat:DELIVRD"

# (our PDU, smpplib command, smpplib fields) describing the same PDU.
SAME_PDUS: list[tuple[Pdu, str, dict[str, Any]]] = [
    (
        BindTransmitter(sequence_number=1, system_id="mymobifone", password="smsc-pwd", system_type="OTP"),
        "bind_transmitter",
        {"sequence": 1, "system_id": "mymobifone", "password": "smsc-pwd", "system_type": "OTP"},
    ),
    (
        BindTransceiver(sequence_number=2, system_id="mymobifone", password="smsc-pwd"),
        "bind_transceiver",
        {"sequence": 2, "system_id": "mymobifone", "password": "smsc-pwd"},
    ),
    (
        BindReceiver(
            sequence_number=3, system_id="esme", password="pw", addr_ton=1, addr_npi=1, address_range="84"
        ),
        "bind_receiver",
        {
            "sequence": 3,
            "system_id": "esme",
            "password": "pw",
            "addr_ton": 1,
            "addr_npi": 1,
            "address_range": "84",
        },
    ),
    (
        BindTransmitterResp(sequence_number=1, system_id="SMSC"),
        "bind_transmitter_resp",
        {"sequence": 1, "system_id": "SMSC"},
    ),
    (
        BindTransceiverResp(
            sequence_number=2, system_id="SMSC", tlvs=(Tlv.uint(Tag.SC_INTERFACE_VERSION, 0x34, 1),)
        ),
        "bind_transceiver_resp",
        {"sequence": 2, "system_id": "SMSC", "sc_interface_version": 0x34},
    ),
    (
        SubmitSm(
            sequence_number=7,
            source_addr_ton=5,
            source_addr="MobiFone",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="84901234567",
            validity_period="000000000500000R",
            registered_delivery=1,
            data_coding=8,
            short_message=OTP_UCS2,
        ),
        "submit_sm",
        {
            "sequence": 7,
            "source_addr_ton": 5,
            "source_addr": "MobiFone",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "84901234567",
            "validity_period": "000000000500000R",
            "registered_delivery": 1,
            "data_coding": 8,
            "short_message": OTP_UCS2,
        },
    ),
    (
        SubmitSm(
            sequence_number=8,
            source_addr="9090",
            destination_addr="84901234567",
            esm_class=0x40,
            short_message=b"\x05\x00\x03\x2a\x02\x01" + b"A" * 153,
        ),
        "submit_sm",
        {
            "sequence": 8,
            "source_addr": "9090",
            "destination_addr": "84901234567",
            "esm_class": 0x40,
            "short_message": b"\x05\x00\x03\x2a\x02\x01" + b"A" * 153,
        },
    ),
    (
        SubmitSm(
            sequence_number=9,
            destination_addr="84901234567",
            tlvs=(
                Tlv.uint(Tag.SAR_MSG_REF_NUM, 513, 2),
                Tlv.uint(Tag.SAR_TOTAL_SEGMENTS, 2, 1),
                Tlv.uint(Tag.SAR_SEGMENT_SEQNUM, 1, 1),
                Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 300),
            ),
        ),
        "submit_sm",
        {
            "sequence": 9,
            "destination_addr": "84901234567",
            "sar_msg_ref_num": 513,
            "sar_total_segments": 2,
            "sar_segment_seqnum": 1,
            "message_payload": b"x" * 300,
        },
    ),
    (
        SubmitSmResp(sequence_number=7, message_id="5f1c0a"),
        "submit_sm_resp",
        {"sequence": 7, "message_id": "5f1c0a"},
    ),
    (
        DeliverSm(
            sequence_number=11,
            source_addr="84901234567",
            destination_addr="MobiFone",
            esm_class=0x04,
            short_message=RECEIPT,
            tlvs=(Tlv.uint(Tag.MESSAGE_STATE, 2, 1), Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "5f1c0a")),
        ),
        "deliver_sm",
        {
            "sequence": 11,
            "source_addr": "84901234567",
            "destination_addr": "MobiFone",
            "esm_class": 0x04,
            "short_message": RECEIPT,
            "message_state": 2,
            "receipted_message_id": "5f1c0a",
        },
    ),
    (DeliverSmResp(sequence_number=11), "deliver_sm_resp", {"sequence": 11}),
    (EnquireLink(sequence_number=12), "enquire_link", {"sequence": 12}),
    (EnquireLinkResp(sequence_number=12), "enquire_link_resp", {"sequence": 12}),
    (Unbind(sequence_number=13), "unbind", {"sequence": 13}),
    (UnbindResp(sequence_number=13), "unbind_resp", {"sequence": 13}),
    (
        GenericNack(sequence_number=14, command_status=CommandStatus.ESME_RINVCMDID),
        "generic_nack",
        {"sequence": 14, "status": CommandStatus.ESME_RINVCMDID},
    ),
]
PDU_IDS = [f"{command}-{index}" for index, (_, command, _) in enumerate(SAME_PDUS)]


@pytest.mark.parametrize(("ours", "command", "fields"), SAME_PDUS, ids=PDU_IDS)
def test_encoding_is_byte_identical_to_smpplib(ours: Pdu, command: str, fields: dict[str, Any]) -> None:
    assert ours.encode() == smpplib_bytes(command, **fields)


@pytest.mark.parametrize(("ours", "command", "fields"), SAME_PDUS, ids=PDU_IDS)
def test_smpplib_bytes_decode_to_the_same_pdu(ours: Pdu, command: str, fields: dict[str, Any]) -> None:
    assert decode_pdu(smpplib_bytes(command, **fields)) == ours


@pytest.mark.parametrize(("ours", "command", "fields"), SAME_PDUS, ids=PDU_IDS)
def test_smpplib_parses_our_bytes(ours: Pdu, command: str, fields: dict[str, Any]) -> None:
    parsed = smpplib_parse(ours.encode())
    assert parsed.command == command
    assert parsed.sequence == ours.sequence_number
    assert parsed.status == ours.command_status
    for name, value in fields.items():
        if name in ("sequence", "status"):
            continue
        expected = value.encode() if isinstance(value, str) else value
        assert getattr(parsed, name) == expected, name


def test_enquire_link_matches_the_spec_layout() -> None:
    assert EnquireLink(sequence_number=1).encode() == bytes.fromhex("00000010 00000015 00000000 00000001")


def test_submit_sm_resp_matches_a_hand_built_vector() -> None:
    encoded = SubmitSmResp(sequence_number=0x0102, message_id="ab").encode()
    assert encoded == bytes.fromhex("00000013 80000004 00000000 00000102 616200")


def test_every_pdu_survives_a_round_trip() -> None:
    for ours, _, _ in SAME_PDUS:
        assert decode_pdu(ours.encode()) == ours


def test_error_responses_omit_the_body_as_the_spec_requires() -> None:
    refused = SubmitSmResp(sequence_number=5, command_status=CommandStatus.ESME_RTHROTTLED, message_id="x")
    assert len(refused.encode()) == 16
    assert decode_pdu(refused.encode()) == SubmitSmResp(
        sequence_number=5, command_status=CommandStatus.ESME_RTHROTTLED
    )


def test_error_response_with_a_body_still_decodes() -> None:
    # Some SMSCs send message_id anyway; smpplib does.
    data = smpplib_bytes("submit_sm_resp", sequence=5, status=CommandStatus.ESME_RTHROTTLED, message_id="")
    assert decode_pdu(data).command_status == CommandStatus.ESME_RTHROTTLED


def test_error_response_builds_the_matching_response_type() -> None:
    assert error_response(CommandId.SUBMIT_SM, 4, CommandStatus.ESME_RINVBNDSTS) == SubmitSmResp(
        sequence_number=4, command_status=CommandStatus.ESME_RINVBNDSTS
    )
    assert isinstance(error_response(0x00000103, 4, CommandStatus.ESME_RINVCMDID), GenericNack)


def test_unknown_tlvs_are_kept_not_rejected() -> None:
    pdu = SubmitSm(destination_addr="84901234567", tlvs=(Tlv(0x1403, b"\x01\x02"),))
    assert decode_pdu(pdu.encode()).tlvs == (Tlv(0x1403, b"\x01\x02"),)


# --- strict decoding ----------------------------------------------------------------------------


def decode_error(data: bytes) -> PduDecodeError:
    with pytest.raises(PduDecodeError) as caught:
        decode_pdu(data)
    return caught.value


def test_length_field_disagreeing_with_the_frame_is_rejected() -> None:
    data = bytearray(EnquireLink(sequence_number=3).encode())
    data[3] = 20
    error = decode_error(bytes(data))
    assert error.status == CommandStatus.ESME_RINVCMDLEN
    assert error.sequence_number == 3


def test_unknown_command_is_reported_for_a_generic_nack() -> None:
    data = bytes.fromhex("00000010 00000103 00000000 0000002a")  # data_sm: not implemented
    error = decode_error(data)
    assert isinstance(error, UnknownCommandError)
    assert (error.status, error.sequence_number) == (CommandStatus.ESME_RINVCMDID, 42)


def test_truncated_body_is_rejected_with_the_command_and_sequence() -> None:
    full = SubmitSm(sequence_number=9, destination_addr="84901234567").encode()
    cut = full[:30]
    cut = len(cut).to_bytes(4, "big") + cut[4:]
    error = decode_error(cut)
    assert (error.command_id, error.sequence_number) == (CommandId.SUBMIT_SM, 9)
    assert error.status == CommandStatus.ESME_RINVCMDLEN


def test_sm_length_beyond_the_body_is_rejected() -> None:
    data = bytearray(SubmitSm(destination_addr="84901234567", short_message=b"hello").encode())
    data[-6] = 200  # sm_length
    assert "short_message" in str(decode_error(bytes(data)))


@pytest.mark.parametrize(
    ("field", "status"),
    [
        ("source_addr", CommandStatus.ESME_RINVSRCADR),
        ("destination_addr", CommandStatus.ESME_RINVDSTADR),
    ],
)
def test_overlong_address_is_answered_with_the_field_status(field: str, status: int) -> None:
    data = smpplib_bytes("submit_sm", sequence=1, **{field: "8" * 30})
    # smpplib truncates to the limit: rebuild the PDU by hand with the oversized field.
    raw = bytearray(data)
    start = raw.index(b"8" * 20)
    raw[start : start + 20] = b"8" * 40
    raw[:4] = len(raw).to_bytes(4, "big")
    assert decode_error(bytes(raw)).status == status


def test_password_longer_than_the_spec_allows_is_rejected_on_decode() -> None:
    body = b"mymobifone\0" + b"smsc-secret\0" + b"\0" + b"\x34\x00\x00\x00"
    data = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000002 00000000 00000001") + body
    assert decode_error(data).status == CommandStatus.ESME_RINVPASWD


def test_truncated_tlv_is_rejected() -> None:
    data = SubmitSm(destination_addr="84901234567", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"abcdef"),)).encode()
    cut = data[:-3]
    cut = len(cut).to_bytes(4, "big") + cut[4:]
    assert decode_error(cut).status == CommandStatus.ESME_RINVOPTPARSTREAM


def test_tlv_with_a_wrong_fixed_length_is_rejected() -> None:
    data = SubmitSm(destination_addr="84901234567", tlvs=(Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\x00\x02"),)).encode()
    assert decode_error(data).status == CommandStatus.ESME_RINVPARLEN


# --- strict encoding ----------------------------------------------------------------------------


def test_password_over_eight_characters_cannot_be_encoded() -> None:
    with pytest.raises(PduEncodeError, match="password"):
        BindTransmitter(system_id="mymobifone", password="smsc-secret").encode()


def test_non_ascii_c_string_cannot_be_encoded() -> None:
    with pytest.raises(PduEncodeError, match="ASCII"):
        SubmitSm(source_addr="MobiFöne").encode()


def test_short_message_over_254_octets_cannot_be_encoded() -> None:
    with pytest.raises(PduEncodeError, match="254"):
        SubmitSm(short_message=b"x" * 255).encode()
