"""Reading the provider's signed result: the server-to-server IPN and the browser's return redirect.

Our extension to VNPay 2.1.0: the provider also sends `vnp_NotifyTime` (yyyyMMddHHmmss, GMT+7),
covered by the signature and re-stamped on every delivery attempt. A merchant that passes
`max_age` refuses notifications stamped outside the window, so a captured notification cannot be
replayed later. VNPay itself does not send it; the return redirect never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from pydantic import AwareDatetime, BaseModel, ConfigDict

from .codes import ResponseCode, TransactionStatus, describe_response
from .errors import BadSignature, Malformed, Stale
from .signing import signed_items, verify
from .vntime import parse_vnp_time

NOTIFY_TIME = "vnp_NotifyTime"
DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
_REQUIRED = ("vnp_TmnCode", "vnp_TxnRef", "vnp_Amount", "vnp_ResponseCode", "vnp_TransactionStatus")


class Notification(BaseModel):
    """A verified payment result. Only signed `vnp_*` fields feed it."""

    model_config = ConfigDict(frozen=True)

    tmn_code: str
    txn_ref: str
    amount_vnd: int
    response_code: str
    transaction_status: str
    transaction_no: str | None  # the provider's id; "0" or absent when nothing was charged
    bank_code: str | None
    bank_tran_no: str | None
    card_type: str | None
    order_info: str | None
    pay_date: AwareDatetime | None  # UTC
    notify_time: AwareDatetime | None  # UTC; our extension, None on the return redirect
    signed_fields: dict[str, str]  # exactly what the signature covered, for the audit trail

    @property
    def succeeded(self) -> bool:
        """Paid: both the response code and the transaction status say success."""
        paid = self.transaction_status == TransactionStatus.SUCCESS
        return paid and self.response_code == ResponseCode.SUCCESS

    @property
    def response_message(self) -> str:
        return describe_response(self.response_code)


def decode_query(raw: str | bytes) -> dict[str, str]:
    """Parse a query string or form body, refusing a repeated key.

    A repeated `vnp_Amount` (say) is how parameter-pollution attacks start: frameworks keep the
    first or the last occurrence, so the value checked and the value used could differ.
    """
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    params: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        if key in params:
            raise Malformed(f"parameter {key[:40]!r} appears more than once")
        params[key] = value
    return params


def parse_notification(
    params: Mapping[str, str],
    secret: str,
    *,
    now: datetime,
    max_age: timedelta,
    tmn_code: str | None = None,
    max_clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Notification:
    """Verify and read an IPN. Raises BadSignature, Malformed or Stale (in that order of checks).

    `now` is the caller's aware clock; a notification is fresh when
    now - max_age <= vnp_NotifyTime <= now + max_clock_skew.
    """
    notification = _parse_signed(params, secret, tmn_code)
    if notification.notify_time is None:
        raise Malformed(f"{NOTIFY_TIME} is required on notifications")
    _check_fresh(notification.notify_time, now, max_age, max_clock_skew)
    return notification


def parse_return(params: Mapping[str, str], secret: str, *, tmn_code: str | None = None) -> Notification:
    """Verify and read the return redirect. It only drives what the customer sees: never credit on it."""
    return _parse_signed(params, secret, tmn_code)


def _parse_signed(params: Mapping[str, str], secret: str, tmn_code: str | None) -> Notification:
    if not verify(params, secret):
        raise BadSignature("vnp_SecureHash missing or wrong")
    fields = dict(signed_items(params))
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise Malformed(f"missing {', '.join(missing)}")
    if tmn_code is not None and fields["vnp_TmnCode"] != tmn_code:
        raise Malformed("vnp_TmnCode is not this merchant's")
    return Notification(
        tmn_code=fields["vnp_TmnCode"],
        txn_ref=fields["vnp_TxnRef"],
        amount_vnd=_amount_vnd(fields["vnp_Amount"]),
        response_code=_two_digits(fields, "vnp_ResponseCode"),
        transaction_status=_two_digits(fields, "vnp_TransactionStatus"),
        transaction_no=fields.get("vnp_TransactionNo"),
        bank_code=fields.get("vnp_BankCode"),
        bank_tran_no=fields.get("vnp_BankTranNo"),
        card_type=fields.get("vnp_CardType"),
        order_info=fields.get("vnp_OrderInfo"),
        pay_date=_optional_time(fields, "vnp_PayDate"),
        notify_time=_optional_time(fields, NOTIFY_TIME),
        signed_fields=fields,
    )


def _amount_vnd(wire: str) -> int:
    """vnp_Amount carries two implied decimals; VND has none, so it must end in 00."""
    if not (wire.isascii() and wire.isdigit()) or len(wire) > 15:
        raise Malformed(f"vnp_Amount is not a whole number: {wire[:20]!r}")
    hundredths = int(wire)
    if hundredths % 100:
        raise Malformed(f"vnp_Amount {wire} is not a whole number of dong")
    return hundredths // 100


def _two_digits(fields: Mapping[str, str], name: str) -> str:
    value = fields[name]
    if len(value) != 2 or not (value.isascii() and value.isdigit()):
        raise Malformed(f"{name} must be two digits, got {value[:10]!r}")
    return value


def _optional_time(fields: Mapping[str, str], name: str) -> datetime | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return parse_vnp_time(value)
    except ValueError as exc:
        raise Malformed(f"{name}: {exc}") from None


def _check_fresh(stamped: datetime, now: datetime, max_age: timedelta, skew: timedelta) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    age = now - stamped
    if age > max_age:
        limit = max_age.total_seconds()
        raise Stale(f"notification stamped {age.total_seconds():.0f}s ago (max {limit:.0f}s)")
    if -age > skew:
        raise Stale(f"notification stamped {-age.total_seconds():.0f}s in the future")


__all__ = ["NOTIFY_TIME", "Notification", "decode_query", "parse_notification", "parse_return"]
