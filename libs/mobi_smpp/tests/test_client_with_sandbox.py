"""SmppClient against the real SMSC sandbox over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mobi_smpp import (
    BindMode,
    ClientClosedError,
    CommandStatus,
    DeliveryReceipt,
    PduEncodeError,
    SmppClient,
    SmppCommandError,
    SmppConnectionError,
)
from smsc_sandbox import SmscSandbox, SmscSettings

# Fixtures from conftest.py.
ClientFactory = Callable[..., SmppClient]
Eventually = Callable[[Callable[[], bool]], Awaitable[None]]
SYSTEM_ID = "mymobifone"
PASSWORD = "smsc-pwd"

VIETNAMESE_OTP = "Mã OTP của bạn là 123456. Không chia sẻ mã này với bất kỳ ai."
LONG_VIETNAMESE = (
    "MobiFone trân trọng thông báo: gói cước của quý khách sẽ được gia hạn vào ngày mai. "
    "Để hủy gia hạn, soạn HUY gửi 9084. Chi tiết liên hệ 9090 (200đ/phút). Xin cảm ơn quý khách!"
)
MSISDN = "84901234567"


def sample(sandbox: SmscSandbox, name: str, labels: dict[str, str] | None = None) -> float:
    value = sandbox.metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


async def test_submit_returns_the_message_id_and_the_smsc_records_the_text(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port)
    ids = await client.submit("MobiFone", MSISDN, VIETNAMESE_OTP)
    [record] = sandbox.store.newest(MSISDN)
    assert ids == [record.id]
    assert (record.text, record.data_coding, record.parts) == (VIETNAMESE_OTP, 0x08, 1)
    assert (record.source, record.destination, record.system_id) == ("MobiFone", MSISDN, SYSTEM_ID)


async def test_long_message_returns_one_id_per_part_and_arrives_whole(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port)
    ids = await client.submit("MobiFone", "+" + MSISDN, LONG_VIETNAMESE)
    [record] = sandbox.store.newest(MSISDN)
    assert len(ids) == 3
    assert record.message_ids == ids
    assert record.text == LONG_VIETNAMESE
    assert record.destination == MSISDN  # "+" dropped: the number goes out as TON international


async def test_gsm_text_goes_out_with_the_default_alphabet(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port, bind_mode=BindMode.TRANSMITTER)
    await client.submit("9090", MSISDN, "Your OTP is 123456 {valid 5 min} €")
    [record] = sandbox.store.newest(MSISDN)
    assert (record.text, record.data_coding) == ("Your OTP is 123456 {valid 5 min} €", 0x00)
    assert sample(sandbox, "smsc_binds_total", {"bind_type": "transmitter", "result": "ok"}) == 1


async def test_concurrent_submits_over_one_bind_all_arrive_with_distinct_ids(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port, window_size=4)
    texts = [f"OTP {n:06d}" for n in range(60)]
    results = await asyncio.gather(*(client.submit("MobiFone", MSISDN, text) for text in texts))
    ids = [message_id for result in results for message_id in result]
    assert len(set(ids)) == 60
    assert sorted(r.text for r in sandbox.store.newest(MSISDN, limit=100)) == texts
    assert sample(sandbox, "smsc_binds_total", {"bind_type": "transceiver", "result": "ok"}) == 1


async def test_wrong_password_keeps_the_client_unbound_and_says_why(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port, password="wrong", request_timeout=0.5)
    with pytest.raises(SmppConnectionError, match="ESME_RBINDFAIL") as caught:
        await client.submit("MobiFone", MSISDN, "never sent")
    assert caught.value.retryable
    assert not client.is_bound
    assert len(sandbox.store) == 0


async def test_throttled_submit_is_a_retryable_error_carrying_the_status(clients: ClientFactory) -> None:
    settings = SmscSettings(smpp_port=0, http_port=0, password=PASSWORD, throttle_per_second=2)
    async with SmscSandbox(settings) as throttled:
        client = clients(throttled.smpp_port)
        outcomes = await asyncio.gather(
            *(client.submit("MobiFone", MSISDN, f"OTP {n}") for n in range(5)), return_exceptions=True
        )
    refused = [o for o in outcomes if isinstance(o, SmppCommandError)]
    assert len(refused) == 3
    assert all(e.status == CommandStatus.ESME_RTHROTTLED and e.retryable for e in refused)


async def test_client_rebinds_after_the_smsc_drops_the_connection(
    sandbox: SmscSandbox, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(sandbox.smpp_port)
    await client.submit("MobiFone", MSISDN, "before the drop")
    await sandbox.smpp.drop_connections()
    await eventually(
        lambda: sample(sandbox, "smsc_binds_total", {"bind_type": "transceiver", "result": "ok"}) == 2
    )
    await client.submit("MobiFone", MSISDN, "after the drop")
    assert [r.text for r in sandbox.store.newest(MSISDN)] == ["after the drop", "before the drop"]


async def test_client_rebinds_after_the_smsc_restarts(clients: ClientFactory, eventually: Eventually) -> None:
    settings = SmscSettings(smpp_port=0, http_port=0, password=PASSWORD)
    first = SmscSandbox(settings)
    await first.start()
    port = first.smpp_port
    client = clients(port)
    await client.wait_bound(2)
    await first.stop()  # unbinds the client, then refuses connections for a while
    await asyncio.sleep(0.3)
    assert not client.is_bound
    async with SmscSandbox(settings.model_copy(update={"smpp_port": port})) as second:
        await client.wait_bound(3)
        await client.submit("MobiFone", MSISDN, "after restart")
        assert second.store.newest(MSISDN)[0].text == "after restart"


async def test_delivery_receipts_reach_the_receipt_handler(
    sandbox: SmscSandbox, clients: ClientFactory, eventually: Eventually
) -> None:
    receipts: list[DeliveryReceipt] = []

    async def on_receipt(receipt: DeliveryReceipt) -> None:
        receipts.append(receipt)

    client = clients(sandbox.smpp_port, registered_delivery=True, on_receipt=on_receipt)
    [message_id] = await client.submit("MobiFone", MSISDN, VIETNAMESE_OTP)
    await eventually(lambda: len(receipts) == 1)
    assert receipts[0].message_id == message_id
    assert receipts[0].is_delivered
    assert receipts[0].text == ""  # the sandbox never echoes the OTP back


async def test_failing_receipt_handler_asks_the_smsc_to_redeliver_later(
    sandbox: SmscSandbox, clients: ClientFactory, eventually: Eventually
) -> None:
    async def broken(receipt: DeliveryReceipt) -> None:
        raise RuntimeError("database down")

    client = clients(sandbox.smpp_port, registered_delivery=True, on_receipt=broken)
    await client.submit("MobiFone", MSISDN, "OTP 1")
    await eventually(lambda: sample(sandbox, "smsc_delivery_receipts_total", {"result": "refused"}) == 1)
    assert client.is_bound


async def test_client_answers_the_smscs_enquire_link(clients: ClientFactory, eventually: Eventually) -> None:
    settings = SmscSettings(smpp_port=0, http_port=0, password=PASSWORD, enquire_link_interval=0.05)
    async with SmscSandbox(settings) as probing:
        client = clients(probing.smpp_port)
        await client.wait_bound(2)
        await eventually(
            lambda: sample(probing, "smsc_enquire_links_sent_total", {"result": "answered"}) >= 3
        )
        assert client.is_bound
        assert sample(probing, "smsc_enquire_links_sent_total", {"result": "unanswered"}) == 0


async def test_close_unbinds_before_disconnecting(
    sandbox: SmscSandbox, clients: ClientFactory, eventually: Eventually
) -> None:
    client = clients(sandbox.smpp_port)
    await client.wait_bound(2)
    await client.close()
    assert sample(sandbox, "smsc_unbinds_total") == 1
    await eventually(lambda: sample(sandbox, "smsc_bound_sessions") == 0)


async def test_submit_after_close_is_refused_and_not_retryable(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port)
    await client.close()
    with pytest.raises(ClientClosedError) as caught:
        await client.submit("MobiFone", MSISDN, "too late")
    assert not caught.value.retryable


def test_credentials_smpp_cannot_carry_are_refused_at_construction(clients: ClientFactory) -> None:
    with pytest.raises(PduEncodeError, match=r"password: SMPP v3\.4 allows at most 8 characters"):
        clients(2775, password="smsc-secret")


async def test_text_or_destination_smpp_cannot_send_is_refused_before_anything_is_sent(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port)
    with pytest.raises(ValueError, match="empty SMS"):
        await client.submit("MobiFone", MSISDN, "")
    with pytest.raises(ValueError, match="destination"):
        await client.submit("MobiFone", "", "OTP")
    with pytest.raises(PduEncodeError, match="destination_addr"):
        await client.submit("MobiFone", "8" * 21, "OTP")
    assert sample(sandbox, "smsc_submit_sm_accepted_total") == 0


async def test_international_numbers_lose_their_plus_on_the_wire(
    sandbox: SmscSandbox, clients: ClientFactory
) -> None:
    client = clients(sandbox.smpp_port)
    await client.submit("+84931111111", "+" + MSISDN, "OTP 1")
    [record] = sandbox.store.newest(MSISDN)
    assert (record.source, record.destination) == ("84931111111", MSISDN)
