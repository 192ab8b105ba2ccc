"""querydr: the merchant asks for the provider's view of a transaction (POST JSON, signed both ways).

Every answer is signed, errors included, so a client can always tell it came from us.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from vnpay import (
    QueryResponseCode,
    TransactionStatus,
    format_vnp_time,
    sign_query_response,
    verify_query_request,
)
from vnpay.querydr import COMMAND, REQUEST_SIGNED_FIELDS

from .models import Transaction
from .settings import Settings
from .store import Store

MESSAGES: dict[str, str] = {
    QueryResponseCode.SUCCESS: "QueryDR Success",
    QueryResponseCode.INVALID_MERCHANT: "Invalid TmnCode",
    QueryResponseCode.MALFORMED_REQUEST: "Invalid request format",
    QueryResponseCode.TRANSACTION_NOT_FOUND: "Transaction not found",
    QueryResponseCode.DUPLICATE_REQUEST: "Duplicate vnp_RequestId",
    QueryResponseCode.INVALID_CHECKSUM: "Invalid checksum",
}


def answer_query(body: Any, settings: Settings, store: Store, now: datetime) -> dict[str, str]:
    code, txn = _evaluate(body, settings, store, now)
    answer = {
        "vnp_ResponseId": secrets.token_hex(16),
        "vnp_Command": COMMAND,
        "vnp_ResponseCode": code,
        "vnp_Message": MESSAGES.get(code, "Error"),
        "vnp_TmnCode": settings.tmn_code,
    }
    if txn is not None:
        answer.update(_transaction_fields(txn, now))
    return sign_query_response(answer, settings.secret)


def _evaluate(body: Any, settings: Settings, store: Store, now: datetime) -> tuple[str, Transaction | None]:
    if not isinstance(body, dict) or any(not body.get(name) for name in REQUEST_SIGNED_FIELDS):
        return QueryResponseCode.MALFORMED_REQUEST, None
    if body.get("vnp_Command") != COMMAND:
        return QueryResponseCode.MALFORMED_REQUEST, None
    if str(body["vnp_TmnCode"]) != settings.tmn_code:
        return QueryResponseCode.INVALID_MERCHANT, None
    if not verify_query_request(body, settings.secret):
        return QueryResponseCode.INVALID_CHECKSUM, None
    ttl = timedelta(seconds=settings.query_request_id_ttl_s)
    if not store.remember_query_request(str(body["vnp_RequestId"]), now, ttl):
        return QueryResponseCode.DUPLICATE_REQUEST, None
    txn = store.transactions.get(str(body["vnp_TxnRef"]))
    # The provider finds a payment by its reference *and* the date the merchant created it.
    if txn is None or str(body["vnp_TransactionDate"]) != txn.create_date:
        return QueryResponseCode.TRANSACTION_NOT_FOUND, None
    return QueryResponseCode.SUCCESS, txn


def reported_status(txn: Transaction, now: datetime) -> str:
    """What the provider says of a transaction: still in progress at the bank (a switch), not
    paid once its payment window has passed unpaid (02), or its result."""
    if txn.in_progress_until_notified:
        return TransactionStatus.PENDING
    if txn.status == TransactionStatus.PENDING and now >= txn.expires_at:
        return TransactionStatus.FAILED
    return txn.status


def _transaction_fields(txn: Transaction, now: datetime) -> dict[str, str]:
    status = reported_status(txn, now)
    fields = {
        "vnp_TxnRef": txn.txn_ref,
        "vnp_Amount": str(txn.amount_vnd * 100),
        "vnp_OrderInfo": txn.order_info,
        "vnp_TransactionType": "01",  # payment (02/03 would be refunds)
        "vnp_TransactionStatus": status,
    }
    if status != TransactionStatus.PENDING and txn.pay_date is not None:
        fields["vnp_PayDate"] = format_vnp_time(txn.pay_date) if txn.pay_date else ""
        fields["vnp_TransactionNo"] = txn.transaction_no or "0"
        fields["vnp_BankCode"] = txn.bank_code or "VNPAY"
    return {key: value for key, value in fields.items() if value}
