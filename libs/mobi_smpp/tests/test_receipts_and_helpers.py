"""Delivery receipt text, address typing, validity periods, status descriptions, backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mobi_smpp import (
    CommandStatus,
    DeliverSm,
    DeliveryReceipt,
    Npi,
    Tag,
    Tlv,
    Ton,
    address_type,
    describe_status,
    format_receipt,
    is_receipt,
    parse_receipt,
    receipt_from_pdu,
    relative_validity_period,
)
from mobi_smpp.backoff import Backoff


def test_receipt_text_round_trips() -> None:
    receipt = DeliveryReceipt("5f1c0a", 1, 1, "2501011200", "2501011201", "DELIVRD", "000", "")
    assert parse_receipt(format_receipt(receipt)) == receipt


def test_receipt_in_a_vendor_variant_parses() -> None:
    text = (
        "id:1234567890 sub:001 dlvrd:000 submit date:2501011200 done date:2501011300 "
        "stat:undeliv err:034 Text:Hi"
    )
    receipt = parse_receipt(text)
    assert (receipt.message_id, receipt.stat, receipt.err, receipt.is_delivered) == (
        "1234567890",
        "UNDELIV",
        "034",
        False,
    )


def test_receipted_message_id_tlv_wins_over_the_text() -> None:
    pdu = DeliverSm(
        esm_class=0x04,
        short_message=b"id:abc sub:001 dlvrd:001 submit date:2501011200 done date:2501011200 "
        b"stat:DELIVRD err:000",
        tlvs=(Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "ABC-full-id"),),
    )
    assert is_receipt(pdu)
    assert receipt_from_pdu(pdu).message_id == "ABC-full-id"


def test_a_mobile_originated_message_is_not_a_receipt() -> None:
    assert not is_receipt(DeliverSm(esm_class=0x00, short_message=b"hello"))


def test_text_that_is_not_a_receipt_is_refused() -> None:
    with pytest.raises(ValueError, match="receipt"):
        parse_receipt("hello")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("MobiFone", (Ton.ALPHANUMERIC, Npi.UNKNOWN)),
        ("84901234567", (Ton.INTERNATIONAL, Npi.ISDN)),
        ("9090", (Ton.UNKNOWN, Npi.ISDN)),
    ],
)
def test_address_type_follows_the_address_form(address: str, expected: tuple[Ton, Npi]) -> None:
    assert address_type(address) == expected


def test_validity_period_uses_the_relative_time_format() -> None:
    assert relative_validity_period(timedelta(minutes=5)) == "000000000500000R"
    assert relative_validity_period(timedelta(days=2, hours=3, seconds=7)) == "000002030007000R"
    with pytest.raises(ValueError, match="99 days"):
        relative_validity_period(timedelta(days=100))


def test_status_descriptions_name_known_and_unknown_codes() -> None:
    assert describe_status(CommandStatus.ESME_RTHROTTLED).startswith("0x00000058 ESME_RTHROTTLED")
    assert describe_status(0x400) == "0x00000400 (unknown status)"


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0)
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 1.0
