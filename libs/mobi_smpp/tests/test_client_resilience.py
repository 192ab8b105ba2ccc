"""SmppClient against a scripted SMSC: timeouts, the in-flight window, keep-alive, SMSC requests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mobi_smpp import (
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SmppClient,
    SmppCommandError,
    SmppConnectionError,
    SmppTimeoutError,
    Unbind,
    UnbindResp,
)

# Fixtures from conftest.py.
ClientFactory = Callable[..., SmppClient]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]
ScriptedSmsc = Any

MSISDN = "84901234567"


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unanswered_submit_times_out_as_retryable(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    scripted_smsc.answer_submits = False
    client = clients(scripted_smsc.port, request_timeout=0.3)
    await client.wait_bound(2)
    started = time.monotonic()
    with pytest.raises(SmppTimeoutError) as caught:
        await client.submit("MobiFone", MSISDN, "OTP 123456")
    assert 0.25 < time.monotonic() - started < 1.0
    assert caught.value.retryable
    assert client.is_bound  # one lost response does not condemn the bind


async def test_late_response_after_a_timeout_is_ignored(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    scripted_smsc.submit_delay = 0.4
    client = clients(scripted_smsc.port, request_timeout=0.2)
    with pytest.raises(SmppTimeoutError):
        await client.submit("MobiFone", MSISDN, "slow")
    scripted_smsc.submit_delay = 0.0
    await asyncio.sleep(0.3)  # the late submit_sm_resp arrives meanwhile
    assert await client.submit("MobiFone", MSISDN, "fast") == ["m2"]


async def test_refused_submit_raises_the_status_and_is_not_retryable(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    scripted_smsc.submit_status = CommandStatus.ESME_RINVDSTADR
    client = clients(scripted_smsc.port)
    with pytest.raises(SmppCommandError, match="ESME_RINVDSTADR") as caught:
        await client.submit("MobiFone", MSISDN, "OTP")
    assert caught.value.status == CommandStatus.ESME_RINVDSTADR
    assert not caught.value.retryable


async def test_in_flight_window_bounds_outstanding_submits(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    scripted_smsc.submit_delay = 0.05
    client = clients(scripted_smsc.port, window_size=3)
    results = await asyncio.gather(*(client.submit("MobiFone", MSISDN, f"OTP {n}") for n in range(12)))
    assert len(results) == 12
    assert scripted_smsc.max_outstanding == 3


async def test_concurrent_submits_get_distinct_sequence_numbers(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    client = clients(scripted_smsc.port, window_size=20)
    await asyncio.gather(*(client.submit("MobiFone", MSISDN, f"OTP {n}") for n in range(40)))
    sequence_numbers = [pdu.sequence_number for pdu in scripted_smsc.submits]
    assert len(set(sequence_numbers)) == 40
    assert all(0 < number <= 0x7FFFFFFF for number in sequence_numbers)


async def test_idle_bind_is_kept_alive_with_enquire_link(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(scripted_smsc.port, enquire_link_interval=0.05)
    await client.wait_bound(2)
    await eventually(lambda: scripted_smsc.enquire_links >= 3)
    assert scripted_smsc.binds == 1


async def test_unanswered_enquire_link_drops_the_dead_link_and_rebinds(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    scripted_smsc.answer_enquire_links = False
    client = clients(scripted_smsc.port, enquire_link_interval=0.05, request_timeout=0.2)
    await client.start()
    await eventually(lambda: scripted_smsc.binds >= 2)


async def test_client_rebinds_after_the_connection_is_cut(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(scripted_smsc.port)
    await client.wait_bound(2)
    scripted_smsc.drop_connections()
    await eventually(lambda: scripted_smsc.binds == 2)
    await client.wait_bound(2)
    assert await client.submit("MobiFone", MSISDN, "after") == ["m1"]


async def test_smsc_initiated_unbind_is_answered_and_the_client_rebinds(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(scripted_smsc.port)
    await client.wait_bound(2)
    scripted_smsc.send_to_clients(Unbind(sequence_number=99))
    await eventually(lambda: scripted_smsc.binds == 2)
    assert UnbindResp(sequence_number=99) in scripted_smsc.responses


async def test_client_answers_smsc_requests(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(scripted_smsc.port)
    await client.wait_bound(2)
    scripted_smsc.send_to_clients(EnquireLink(sequence_number=7))
    scripted_smsc.send_to_clients(DeliverSm(sequence_number=8, source_addr=MSISDN, short_message=b"MO text"))
    scripted_smsc.send_to_clients(BindTransmitter(sequence_number=9))  # nonsense from an SMSC
    await eventually(lambda: len(scripted_smsc.responses) == 3)
    assert scripted_smsc.responses == [
        EnquireLinkResp(sequence_number=7),
        DeliverSmResp(sequence_number=8),
        GenericNack(sequence_number=9, command_status=CommandStatus.ESME_RINVCMDID),
    ]


async def test_undecodable_pdu_from_the_smsc_gets_a_generic_nack(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(scripted_smsc.port)
    await client.wait_bound(2)
    for writer in scripted_smsc.writers:
        writer.write(bytes.fromhex("00000010 00000103 00000000 00000033"))  # data_sm: unsupported
    await eventually(lambda: len(scripted_smsc.responses) == 1)
    assert scripted_smsc.responses == [
        GenericNack(sequence_number=0x33, command_status=CommandStatus.ESME_RINVCMDID)
    ]
    assert client.is_bound


async def test_close_lets_in_flight_submits_finish_before_unbinding(
    scripted_smsc: ScriptedSmsc, clients: ClientFactory
) -> None:
    scripted_smsc.submit_delay = 0.3
    client = clients(scripted_smsc.port)
    await client.wait_bound(2)
    submit = asyncio.create_task(client.submit("MobiFone", MSISDN, "in flight"))
    await asyncio.sleep(0.05)
    await client.close()
    assert submit.done()
    assert submit.result() == ["m1"]
    assert scripted_smsc.unbinds == 1


async def test_submit_while_the_smsc_is_unreachable_fails_with_the_reason(
    clients: ClientFactory, closed_port: int
) -> None:
    client = clients(closed_port, request_timeout=0.3)
    with pytest.raises(
        SmppConnectionError, match=r"not bound to SMSC .* within 0\.3s: ConnectionRefusedError"
    ) as caught:
        await client.submit("MobiFone", MSISDN, "nobody listens")
    assert caught.value.retryable


async def test_start_does_not_wait_for_the_smsc(clients: ClientFactory, closed_port: int) -> None:
    client = clients(closed_port)
    started = time.monotonic()
    await client.start()
    assert time.monotonic() - started < 0.1
    assert not client.is_bound
