"""Events produced by the payment service (topic `payment.events.v1`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from ..envelope import Envelope, EventData
from ..msisdn import Msisdn

TopupMethod = Literal["card_international", "card_domestic", "scratch_card"]
PaymentKind = Literal["topup", "bill"]
Vnd = int  # amounts are whole đồng; VND has no minor unit


class TopupRecordedData(EventData):
    """Money to credit to the subject's main account, exactly once per `topup_id`."""

    topup_id: str = Field(min_length=1, max_length=64)
    amount_vnd: Vnd = Field(gt=0, le=50_000_000)
    method: TopupMethod
    payer_msisdn: Msisdn
    payment_id: str | None = Field(default=None, max_length=64)
    provider_reference: str | None = Field(default=None, max_length=64)
    recorded_at: AwareDatetime


class TopupRecorded(Envelope[TopupRecordedData]):
    EVENT_TYPE = "TopupRecorded"
    EVENT_VERSION = 1


class BillPaidData(EventData):
    bill_id: str = Field(min_length=1, max_length=64)
    amount_vnd: Vnd = Field(gt=0)
    payment_id: str = Field(min_length=1, max_length=64)
    payer_msisdn: Msisdn
    paid_at: AwareDatetime


class BillPaid(Envelope[BillPaidData]):
    EVENT_TYPE = "BillPaid"
    EVENT_VERSION = 1


class PaymentSucceededData(EventData):
    """The provider confirmed the payment. Never carries card data: only the scheme/bank."""

    payment_id: str = Field(min_length=1, max_length=64)
    kind: PaymentKind
    amount_vnd: Vnd = Field(gt=0)
    method: TopupMethod
    provider: str = Field(max_length=32)
    provider_transaction_no: str | None = Field(default=None, max_length=64)
    bank_code: str | None = Field(default=None, max_length=32)
    card_type: str | None = Field(default=None, max_length=32)
    target_msisdn: Msisdn
    bill_id: str | None = Field(default=None, max_length=64)
    paid_at: AwareDatetime


class PaymentSucceeded(Envelope[PaymentSucceededData]):
    EVENT_TYPE = "PaymentSucceeded"
    EVENT_VERSION = 1


class PaymentFailedData(EventData):
    payment_id: str = Field(min_length=1, max_length=64)
    kind: PaymentKind
    amount_vnd: Vnd = Field(gt=0)
    status: Literal["failed", "expired"]
    reason_code: str = Field(max_length=32)
    reason: str = Field(max_length=200)
    failed_at: AwareDatetime


class PaymentFailed(Envelope[PaymentFailedData]):
    EVENT_TYPE = "PaymentFailed"
    EVENT_VERSION = 1
