"""What the provider remembers: transactions and the notifications it sent about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from vnpay import IpnAnswer, ResponseCode, TransactionStatus, format_vnp_time

from .payment_request import PaymentRequest


class Stage(StrEnum):
    CARD = "card"  # hosted page shown, waiting for the card form
    CHALLENGE = "challenge"  # waiting for the OTP (3-D Secure / domestic bank OTP)
    DONE = "done"  # result decided, notification dispatched


@dataclass
class Transaction(PaymentRequest):
    """One payment request as the provider sees it. Card data: masked number only."""

    session_id: str
    tmn_code: str
    opened_at: datetime
    stage: Stage = Stage.CARD
    status: str = TransactionStatus.PENDING
    response_code: str | None = None
    transaction_no: str | None = None
    pay_date: datetime | None = None
    masked_card: str | None = None
    scheme: str | None = None
    card_type: str | None = None
    bank_code: str | None = None
    reason: str | None = None  # why it ended the way it did, for people reading the sandbox state
    pending_response_code: str | None = None  # decided at card entry, applied after the OTP
    # query_in_progress switch: querydr says "01" until the notification goes out.
    in_progress_until_notified: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status == TransactionStatus.SUCCESS

    def result_fields(self) -> dict[str, str]:
        """Unsigned vnp_* result shared by the return redirect and the IPN."""
        assert self.response_code is not None and self.pay_date is not None, "result not decided yet"
        fields = {
            "vnp_TmnCode": self.tmn_code,
            "vnp_TxnRef": self.txn_ref,
            "vnp_Amount": str(self.amount_vnd * 100),
            "vnp_OrderInfo": self.order_info,
            "vnp_ResponseCode": self.response_code,
            "vnp_TransactionStatus": self.status,
            "vnp_TransactionNo": self.transaction_no or "0",
            "vnp_BankCode": self.bank_code or "VNPAY",
            "vnp_PayDate": format_vnp_time(self.pay_date),
        }
        if self.card_type:
            fields["vnp_CardType"] = self.card_type
        if self.response_code == ResponseCode.SUCCESS:
            fields["vnp_BankTranNo"] = f"VNP{self.transaction_no}"
        return fields

    def view(self) -> dict[str, Any]:
        return {
            "txn_ref": self.txn_ref,
            "tmn_code": self.tmn_code,
            "amount_vnd": self.amount_vnd,
            "order_info": self.order_info,
            "order_type": self.order_type,
            "stage": self.stage,
            "transaction_status": self.status,
            "response_code": self.response_code,
            "transaction_no": self.transaction_no,
            "pay_date": self.pay_date.isoformat() if self.pay_date else None,
            "create_date": self.create_date,
            "expires_at": self.expires_at.isoformat(),
            "requested_bank_code": self.requested_bank_code,
            "bank_code": self.bank_code,
            "card_type": self.card_type,
            "scheme": self.scheme,
            "masked_card": self.masked_card,
            "reason": self.reason,
        }


class Delivery(StrEnum):
    PENDING = "pending"  # waiting (delay, retry pause) or in flight
    HELD = "held"  # out-of-order switch: waits for the next payment's notification
    ACKNOWLEDGED = "acknowledged"  # merchant answered RspCode 00 or 02
    UNACKNOWLEDGED = "unacknowledged"  # every allowed attempt ended without 00/02
    CANCELLED = "cancelled"  # state reset or shutdown


class Kind(StrEnum):
    GENUINE = "genuine"
    DUPLICATE = "duplicate"
    RESEND = "resend"
    TAMPERED_SIGNATURE = "tampered_signature"
    TAMPERED_AMOUNT = "tampered_amount"
    STALE = "stale"
    CONTRADICTING_FAILURE = "contradicting_failure"


@dataclass
class Attempt:
    number: int
    at: datetime
    elapsed_ms: float
    http_status: int | None = None
    rsp_code: str | None = None
    message: str | None = None
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.http_status == 200 and self.rsp_code in IpnAnswer.FINAL_CODES

    def view(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at.isoformat(),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "http_status": self.http_status,
            "rsp_code": self.rsp_code,
            "message": self.message,
            "error": self.error,
        }


@dataclass
class NotificationRecord:
    id: str
    txn_ref: str
    kind: Kind
    created_at: datetime
    max_attempts: int
    status: Delivery = Delivery.PENDING
    params: dict[str, str] = field(default_factory=dict)  # as last sent
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        last = self.attempts[-1] if self.attempts else None
        return {
            "id": self.id,
            "txn_ref": self.txn_ref,
            "kind": self.kind,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "max_attempts": self.max_attempts,
            "params": self.params,
            "attempts": [attempt.view() for attempt in self.attempts],
            "merchant_answer": {"RspCode": last.rsp_code, "Message": last.message} if last else None,
        }
