"""SMSC delivery receipts: the de-facto text format of SMPP v3.4 Appendix B.

`id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...`
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .constants import EsmClass, Tag
from .pdu import DeliverSm

_RECEIPT = re.compile(
    r"id:(?P<id>\S*)\s+sub:(?P<sub>\d+)\s+dlvrd:(?P<dlvrd>\d+)\s+"
    r"submit date:(?P<submit>\d*)\s+done date:(?P<done>\d*)\s+"
    r"stat:(?P<stat>\w+)\s+err:(?P<err>\w+)(?:\s+text:(?P<text>.*))?",
    re.IGNORECASE | re.DOTALL,
)

# The `stat` a receipt reports for a message that reached the handset.
DELIVERED = "DELIVRD"


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    submitted: int
    delivered: int
    submit_date: str  # YYMMDDhhmm, SMSC local time
    done_date: str
    stat: str
    err: str
    text: str = ""

    @property
    def is_delivered(self) -> bool:
        return self.stat == DELIVERED


def format_receipt(receipt: DeliveryReceipt) -> str:
    return (
        f"id:{receipt.message_id} sub:{receipt.submitted:03d} dlvrd:{receipt.delivered:03d} "
        f"submit date:{receipt.submit_date} done date:{receipt.done_date} "
        f"stat:{receipt.stat} err:{receipt.err} text:{receipt.text}"
    )


def parse_receipt(text: str) -> DeliveryReceipt:
    match = _RECEIPT.search(text)
    if match is None:
        raise ValueError("not an SMSC delivery receipt")
    return DeliveryReceipt(
        message_id=match["id"],
        submitted=int(match["sub"]),
        delivered=int(match["dlvrd"]),
        submit_date=match["submit"],
        done_date=match["done"],
        stat=match["stat"].upper(),
        err=match["err"],
        text=match["text"] or "",
    )


def is_receipt(pdu: DeliverSm) -> bool:
    return pdu.esm_class & EsmClass.MESSAGE_TYPE_MASK == EsmClass.DELIVERY_RECEIPT


def receipt_from_pdu(pdu: DeliverSm) -> DeliveryReceipt:
    """The receipt a deliver_sm carries; the receipted_message_id TLV wins over the text's id."""
    receipt = parse_receipt(pdu.short_message.decode("latin-1"))
    tlv = pdu.tlv(Tag.RECEIPTED_MESSAGE_ID)
    if tlv is None:
        return receipt
    return dataclasses.replace(receipt, message_id=tlv.as_cstring())
