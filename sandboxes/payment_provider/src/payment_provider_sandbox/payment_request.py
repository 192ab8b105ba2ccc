"""Reading and checking a signed payment URL, as the provider's front door does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from vnpay import (
    CURRENCY,
    MAX_AMOUNT_VND,
    MIN_AMOUNT_VND,
    VERSION,
    BankCode,
    canonical_query,
    parse_vnp_time,
    verify,
)

from .cards import DOMESTIC_METHODS

REQUIRED = (
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_Amount",
    "vnp_CurrCode",
    "vnp_TxnRef",
    "vnp_OrderInfo",
    "vnp_OrderType",
    "vnp_Locale",
    "vnp_ReturnUrl",
    "vnp_IpAddr",
    "vnp_CreateDate",
    "vnp_ExpireDate",
)
SUPPORTED_BANK_CODES = DOMESTIC_METHODS | {BankCode.INTERNATIONAL_CARD}


class CheckoutError(Exception):
    """Shown to the customer as the provider's error page (or returned as JSON by /sandbox/pay)."""

    def __init__(self, code: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code


@dataclass
class PaymentRequest:
    """What a verified payment URL asked for (the provider's transaction extends it)."""

    fingerprint: str  # canonical query of the signed request: reopening must not change it
    txn_ref: str
    amount_vnd: int
    order_info: str
    order_type: str
    locale: str
    return_url: str
    client_ip: str
    requested_bank_code: str | None
    create_date: str  # vnp_CreateDate exactly as sent (querydr looks it up by this)
    expires_at: datetime


def read_payment_request(
    params: Mapping[str, str], tmn_code: str, secret: str, now: datetime
) -> PaymentRequest:
    """Check merchant, signature, then format, then the payment window. Raises CheckoutError."""
    if params.get("vnp_TmnCode") != tmn_code:
        raise CheckoutError("02", "Invalid merchant (vnp_TmnCode unknown)")
    if not verify(params, secret):
        raise CheckoutError("97", "Invalid signature: the payment request was not signed by the merchant")
    request = _read_fields(params)
    if now >= request.expires_at:
        raise CheckoutError("11", "The payment window has expired (vnp_ExpireDate)", status_code=410)
    return request


def _read_fields(params: Mapping[str, str]) -> PaymentRequest:
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise _format_error(f"missing {', '.join(missing)}")
    _expect(params, "vnp_Version", VERSION)
    _expect(params, "vnp_Command", "pay")
    _expect(params, "vnp_CurrCode", CURRENCY)
    if params["vnp_Locale"] not in ("vn", "en"):
        raise _format_error("vnp_Locale must be vn or en")
    bank_code = params.get("vnp_BankCode") or None
    if bank_code is not None and bank_code not in SUPPORTED_BANK_CODES:
        raise _format_error(f"vnp_BankCode {bank_code[:20]!r} is not offered by this sandbox")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", params["vnp_TxnRef"]):
        raise _format_error("vnp_TxnRef must be 1-100 letters, digits, '_' or '-'")
    created, expires = _time(params, "vnp_CreateDate"), _time(params, "vnp_ExpireDate")
    if expires <= created:
        raise _format_error("vnp_ExpireDate must be after vnp_CreateDate")
    return PaymentRequest(
        fingerprint=canonical_query(params),
        txn_ref=params["vnp_TxnRef"],
        amount_vnd=_amount(params["vnp_Amount"]),
        order_info=params["vnp_OrderInfo"],
        order_type=params["vnp_OrderType"],
        locale=params["vnp_Locale"],
        return_url=_return_url(params["vnp_ReturnUrl"]),
        client_ip=params["vnp_IpAddr"],
        requested_bank_code=bank_code,
        create_date=params["vnp_CreateDate"],
        expires_at=expires,
    )


def _format_error(detail: str) -> CheckoutError:
    return CheckoutError("03", f"Invalid data format: {detail}")


def _expect(params: Mapping[str, str], name: str, value: str) -> None:
    if params[name] != value:
        raise _format_error(f"{name} must be {value}")


def _amount(wire: str) -> int:
    if not (wire.isascii() and wire.isdigit()) or int(wire) % 100:
        raise _format_error("vnp_Amount must be a whole number of dong times 100")
    amount = int(wire) // 100
    if not MIN_AMOUNT_VND <= amount <= MAX_AMOUNT_VND:
        raise _format_error(f"amount must be {MIN_AMOUNT_VND:,} to {MAX_AMOUNT_VND:,} VND")
    return amount


def _time(params: Mapping[str, str], name: str) -> datetime:
    try:
        return parse_vnp_time(params[name])
    except ValueError:
        raise _format_error(f"{name} must be yyyyMMddHHmmss (GMT+7)") from None


def _return_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _format_error("vnp_ReturnUrl must be an http(s) URL")
    return url
