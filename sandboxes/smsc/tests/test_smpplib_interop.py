"""smpplib, an independent SMPP implementation, against the sandbox; results read over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from smpplib import consts
from smpplib import gsm as smpplib_gsm
from smpplib.client import Client
from smpplib.exceptions import PDUError

from mobi_smpp import CommandStatus
from smsc_sandbox import SmscSandbox

SandboxFactory = Callable[..., Awaitable[SmscSandbox]]  # fixture from conftest.py
SYSTEM_ID = "mymobifone"
PASSWORD = "smsc-pwd"
MSISDN = "84901234567"
VIETNAMESE_OTP = "Mã OTP của bạn là 123456. Không chia sẻ mã này với bất kỳ ai."
LONG_VIETNAMESE = (
    "Quý khách đã đăng ký thành công gói cước MobiFone. Mã OTP của bạn là 654321, có hiệu lực "
    "trong 5 phút. Tuyệt đối không chia sẻ mã này với bất kỳ ai, kể cả nhân viên MobiFone. "
    "Chi tiết liên hệ 9090 (200đ/phút). Trân trọng cảm ơn quý khách đã sử dụng dịch vụ!"
)


@contextmanager
def smpplib_session(port: int) -> Iterator[Client]:
    client = Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    try:
        yield client
    finally:
        client.disconnect()


def bind_and_send(port: int, text: str, *, count: int = 1, password: str = PASSWORD) -> list[int]:
    """Bind as transmitter, send `text` `count` times the way smpplib splits it; submit statuses."""
    statuses: list[int] = []
    with smpplib_session(port) as client:
        client.bind_transmitter(system_id=SYSTEM_ID, password=password)
        parts, data_coding, esm_class = smpplib_gsm.make_parts(text)
        for _ in range(count):
            for part in parts:
                client.send_message(
                    source_addr_ton=consts.SMPP_TON_ALNUM,
                    source_addr="MobiFone",
                    dest_addr_ton=consts.SMPP_TON_INTL,
                    dest_addr_npi=consts.SMPP_NPI_ISDN,
                    destination_addr=MSISDN,
                    short_message=part,
                    data_coding=data_coding,
                    esm_class=esm_class,
                )
                statuses.append(int(client.read_pdu().status))
        client.unbind()
    return statuses


def bind_status(port: int, password: str) -> int:
    with smpplib_session(port) as client:
        try:
            client.bind_transmitter(system_id=SYSTEM_ID, password=password)
        except PDUError as refused:
            return int(refused.args[1])
        client.unbind()
        return CommandStatus.ESME_ROK


def submit_without_bind(port: int) -> Any:
    with smpplib_session(port) as client:
        # smpplib refuses locally to submit unbound; make it send so the SMSC has to answer.
        client.state = consts.SMPP_CLIENT_STATE_BOUND_TX
        client.send_message(destination_addr=MSISDN, short_message=b"sneaky")
        return client.read_pdu()


async def latest_text(http: httpx.AsyncClient, to: str = MSISDN) -> str:
    response = await http.get("/messages/latest", params={"to": to})
    response.raise_for_status()
    text: str = response.json()["text"]
    return text


async def test_gsm_message_from_smpplib_is_readable_over_http(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    text = "Your MobiFone OTP is 123456. Do not share it: [MobiFone] ~ €5"
    assert await asyncio.to_thread(bind_and_send, sandbox.smpp_port, text) == [0]
    record = (await http.get("/messages/latest", params={"to": MSISDN})).json()
    assert (record["text"], record["data_coding"], record["parts"]) == (text, 0, 1)
    assert (record["source"], record["destination"], record["system_id"]) == ("MobiFone", MSISDN, SYSTEM_ID)


async def test_vietnamese_otp_from_smpplib_arrives_as_ucs2(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    assert await asyncio.to_thread(bind_and_send, sandbox.smpp_port, VIETNAMESE_OTP) == [0]
    record = (await http.get("/messages/latest", params={"to": MSISDN})).json()
    assert (record["text"], record["data_coding"], record["parts"]) == (VIETNAMESE_OTP, 8, 1)


async def test_long_vietnamese_message_is_reassembled_from_its_parts(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    statuses = await asyncio.to_thread(bind_and_send, sandbox.smpp_port, LONG_VIETNAMESE)
    assert statuses == [0, 0, 0, 0]
    record = (await http.get("/messages/latest", params={"to": MSISDN})).json()
    assert record["text"] == LONG_VIETNAMESE
    assert record["parts"] == len(record["message_ids"]) == 4


async def test_long_gsm_message_is_reassembled_even_when_smpplib_splits_an_escape(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    text = "a" * 152 + "€" + "t" * 10  # smpplib cuts between ESC and the euro code
    assert await asyncio.to_thread(bind_and_send, sandbox.smpp_port, text) == [0, 0]
    assert await latest_text(http) == text


async def test_wrong_password_is_refused_with_bind_fail(sandbox: SmscSandbox) -> None:
    assert await asyncio.to_thread(bind_status, sandbox.smpp_port, "wrong") == CommandStatus.ESME_RBINDFAIL
    assert await asyncio.to_thread(bind_status, sandbox.smpp_port, PASSWORD) == CommandStatus.ESME_ROK


async def test_submit_before_bind_is_refused_with_invalid_bind_status(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    response = await asyncio.to_thread(submit_without_bind, sandbox.smpp_port)
    assert response.command == "submit_sm_resp"
    assert response.status == CommandStatus.ESME_RINVBNDSTS
    assert (await http.get("/messages")).json() == []


async def test_submits_above_the_rate_limit_are_throttled(make_sandbox: SandboxFactory) -> None:
    throttled = await make_sandbox(throttle_per_second=2)
    statuses = await asyncio.to_thread(bind_and_send, throttled.smpp_port, "OTP 123456", count=5)
    assert statuses == [0, 0] + [CommandStatus.ESME_RTHROTTLED] * 3
    assert len(throttled.store) == 2
