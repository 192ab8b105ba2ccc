"""The delivery receipt (deliver_sm) the sandbox sends for an accepted submit_sm."""

from __future__ import annotations

from datetime import UTC, datetime

from mobi_smpp import (
    DataCoding,
    DeliverSm,
    DeliveryReceipt,
    EsmClass,
    MessageState,
    SubmitSm,
    Tag,
    Tlv,
    format_receipt,
)


def receipt_for(submitted: SubmitSm, message_id: str) -> DeliverSm:
    """A DELIVRD receipt, addressed back from the handset to the submitting ESME."""
    now = datetime.now(UTC).strftime("%y%m%d%H%M")
    # `text` stays empty: real SMSCs echo the first 20 characters, which would be the OTP.
    receipt = DeliveryReceipt(message_id, 1, 1, now, now, "DELIVRD", "000")
    return DeliverSm(
        source_addr_ton=submitted.dest_addr_ton,
        source_addr_npi=submitted.dest_addr_npi,
        source_addr=submitted.destination_addr,
        dest_addr_ton=submitted.source_addr_ton,
        dest_addr_npi=submitted.source_addr_npi,
        destination_addr=submitted.source_addr,
        esm_class=EsmClass.DELIVERY_RECEIPT,
        data_coding=DataCoding.DEFAULT,
        short_message=format_receipt(receipt).encode("ascii"),
        tlvs=(
            Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, message_id),
            Tlv.uint(Tag.MESSAGE_STATE, MessageState.DELIVERED, 1),
        ),
    )
