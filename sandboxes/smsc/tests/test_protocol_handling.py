"""The sandbox's answers to raw PDUs: bind rules, concatenation forms, malformed input."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mobi_smpp import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataCoding,
    EnquireLink,
    EnquireLinkResp,
    EsmClass,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
    concat_udh,
    decode_pdu,
    read_frame,
)
from smsc_sandbox import SmscSandbox

SandboxFactory = Callable[..., Awaitable[SmscSandbox]]  # fixture from conftest.py
SYSTEM_ID = "mymobifone"
PASSWORD = "smsc-pwd"
MSISDN = "84901234567"


class RawEsme:
    """Writes PDUs (or bytes) and reads back whatever the SMSC answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._sequence = 0

    async def call(self, pdu: Pdu) -> Pdu:
        self._sequence += 1
        return await self.send_raw(dataclasses.replace(pdu, sequence_number=self._sequence).encode())

    async def send_raw(self, data: bytes) -> Pdu:
        self.writer.write(data)
        frame = await asyncio.wait_for(read_frame(self.reader), 5)
        assert frame is not None, "connection closed"
        return decode_pdu(frame)

    async def bind(self) -> None:
        response = await self.call(BindTransmitter(system_id=SYSTEM_ID, password=PASSWORD))
        assert response.command_status == CommandStatus.ESME_ROK


@pytest.fixture
async def esme(sandbox: SmscSandbox) -> AsyncIterator[RawEsme]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.smpp_port)
    yield RawEsme(reader, writer)
    writer.close()


async def test_bind_answers_with_the_smsc_system_id(esme: RawEsme) -> None:
    response = await esme.call(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD))
    assert response.command_status == CommandStatus.ESME_ROK
    assert response.name == "bind_transceiver_resp"


async def test_wrong_system_id_is_refused_like_a_wrong_password(esme: RawEsme) -> None:
    response = await esme.call(BindTransmitter(system_id="intruder", password=PASSWORD))
    assert response.command_status == CommandStatus.ESME_RBINDFAIL


async def test_second_bind_on_one_connection_is_refused(esme: RawEsme) -> None:
    await esme.bind()
    response = await esme.call(BindTransmitter(system_id=SYSTEM_ID, password=PASSWORD))
    assert response.command_status == CommandStatus.ESME_RALYBND


async def test_receiver_bind_may_not_submit(esme: RawEsme) -> None:
    await esme.call(BindReceiver(system_id=SYSTEM_ID, password=PASSWORD))
    response = await esme.call(SubmitSm(destination_addr=MSISDN, short_message=b"hi"))
    assert response.command_status == CommandStatus.ESME_RINVBNDSTS


async def test_enquire_link_is_answered_before_and_after_bind(esme: RawEsme) -> None:
    assert isinstance(await esme.call(EnquireLink()), EnquireLinkResp)
    await esme.bind()
    assert isinstance(await esme.call(EnquireLink()), EnquireLinkResp)


async def test_unbind_is_acknowledged_then_the_connection_closes(esme: RawEsme) -> None:
    await esme.bind()
    assert isinstance(await esme.call(Unbind()), UnbindResp)
    assert await asyncio.wait_for(esme.reader.read(), 5) == b""


async def test_sar_tlv_parts_are_reassembled(esme: RawEsme, sandbox: SmscSandbox) -> None:
    await esme.bind()
    for number, chunk in ((2, "world"), (1, "hello ")):  # out of order on purpose
        response = await esme.call(
            SubmitSm(
                destination_addr=MSISDN,
                short_message=chunk.encode(),
                tlvs=(
                    Tlv.uint(Tag.SAR_MSG_REF_NUM, 0x1234, 2),
                    Tlv.uint(Tag.SAR_TOTAL_SEGMENTS, 2, 1),
                    Tlv.uint(Tag.SAR_SEGMENT_SEQNUM, number, 1),
                ),
            )
        )
        assert response.command_status == CommandStatus.ESME_ROK
    [record] = sandbox.store.newest(MSISDN)
    assert (record.text, record.parts) == ("hello world", 2)


async def test_parts_with_different_references_stay_separate_messages(
    esme: RawEsme, sandbox: SmscSandbox
) -> None:
    await esme.bind()
    for reference, sequence, text in ((1, 1, "A1"), (2, 1, "B1"), (2, 2, "B2"), (1, 2, "A2")):
        await esme.call(
            SubmitSm(
                destination_addr=MSISDN,
                esm_class=EsmClass.UDHI,
                short_message=concat_udh(reference, 2, sequence) + text.encode(),
            )
        )
    assert [r.text for r in sandbox.store.newest(MSISDN)] == ["A1A2", "B1B2"]


async def test_message_payload_tlv_carries_long_text(esme: RawEsme, sandbox: SmscSandbox) -> None:
    await esme.bind()
    text = "Mã OTP của bạn là 123456. " * 6
    response = await esme.call(
        SubmitSm(
            destination_addr=MSISDN,
            data_coding=DataCoding.UCS2,
            tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, text.encode("utf-16-be")),),
        )
    )
    assert response.command_status == CommandStatus.ESME_ROK
    assert sandbox.store.newest(MSISDN)[0].text == text


async def test_short_message_and_message_payload_together_are_refused(esme: RawEsme) -> None:
    await esme.bind()
    response = await esme.call(
        SubmitSm(destination_addr=MSISDN, short_message=b"a", tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"b"),))
    )
    assert response.command_status == CommandStatus.ESME_RINVMSGLEN


async def test_octets_outside_the_gsm_alphabet_are_refused(esme: RawEsme, sandbox: SmscSandbox) -> None:
    await esme.bind()
    response = await esme.call(SubmitSm(destination_addr=MSISDN, short_message=b"caf\xe9"))
    assert response.command_status == CommandStatus.ESME_RSUBMITFAIL
    assert len(sandbox.store) == 0


async def test_unsupported_data_coding_is_refused(esme: RawEsme) -> None:
    await esme.bind()
    response = await esme.call(SubmitSm(destination_addr=MSISDN, data_coding=0x04, short_message=b"\x01"))
    assert response.command_status == CommandStatus.ESME_RSUBMITFAIL


async def test_broken_concatenation_header_is_refused(esme: RawEsme) -> None:
    await esme.bind()
    response = await esme.call(
        SubmitSm(destination_addr=MSISDN, esm_class=EsmClass.UDHI, short_message=b"\x09ab")
    )
    assert response.command_status == CommandStatus.ESME_RINVESMCLASS


async def test_unknown_command_gets_a_generic_nack_and_the_session_survives(esme: RawEsme) -> None:
    response = await esme.send_raw(bytes.fromhex("00000010 00000103 00000000 00000077"))
    assert response == GenericNack(sequence_number=0x77, command_status=CommandStatus.ESME_RINVCMDID)
    await esme.bind()


async def test_malformed_submit_gets_an_error_submit_sm_resp(esme: RawEsme) -> None:
    await esme.bind()
    body = b"\0" + b"\x05\x00" + b"MobiFone"  # source_addr never NUL-terminated
    response = await esme.send_raw(
        (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000004 00000000 0000000a") + body
    )
    assert response == SubmitSmResp(sequence_number=10, command_status=CommandStatus.ESME_RINVCMDLEN)


async def test_impossible_command_length_gets_a_generic_nack_and_a_hang_up(esme: RawEsme) -> None:
    response = await esme.send_raw(bytes.fromhex("00000008 00000015 00000000 00000001"))
    assert response == GenericNack(command_status=CommandStatus.ESME_RINVCMDLEN)
    assert await asyncio.wait_for(esme.reader.read(), 5) == b""


async def test_stopping_the_sandbox_unbinds_bound_esmes(make_sandbox: SandboxFactory) -> None:
    stopping = await make_sandbox()
    reader, writer = await asyncio.open_connection("127.0.0.1", stopping.smpp_port)
    esme = RawEsme(reader, writer)
    await esme.bind()
    stop = asyncio.create_task(stopping.stop())
    frame = await asyncio.wait_for(read_frame(reader), 5)
    assert frame is not None
    unbind = decode_pdu(frame)
    assert isinstance(unbind, Unbind)
    writer.write(UnbindResp(sequence_number=unbind.sequence_number).encode())
    await asyncio.wait_for(stop, 5)
    writer.close()


async def test_last_part_is_refused_when_the_joined_parts_do_not_decode(
    esme: RawEsme, sandbox: SmscSandbox
) -> None:
    await esme.bind()
    halves = "😀".encode("utf-16-be")  # a surrogate pair: each part holds one unit, valid on its own
    first = SubmitSm(destination_addr=MSISDN, data_coding=DataCoding.UCS2, esm_class=EsmClass.UDHI)
    ok = await esme.call(dataclasses.replace(first, short_message=concat_udh(5, 2, 1) + halves[:2]))
    assert ok.command_status == CommandStatus.ESME_ROK
    bad = await esme.call(dataclasses.replace(first, short_message=concat_udh(5, 2, 2) + halves[:2]))
    assert bad.command_status == CommandStatus.ESME_RSUBMITFAIL
    assert len(sandbox.store) == 0
