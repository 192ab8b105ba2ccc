from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vnpay import (
    BadSignature,
    Malformed,
    Stale,
    decode_query,
    format_vnp_time,
    parse_notification,
    parse_return,
    with_signature,
)

from .conftest import SECRET

MAX_AGE = timedelta(minutes=5)


def ipn(now: datetime, **overrides: str) -> dict[str, str]:
    fields = {
        "vnp_TmnCode": "MYMOBI01",
        "vnp_TxnRef": "PAY-1",
        "vnp_Amount": "12345600",
        "vnp_OrderInfo": "Nap tien 0901234567",
        "vnp_ResponseCode": "00",
        "vnp_TransactionStatus": "00",
        "vnp_TransactionNo": "14422574",
        "vnp_BankCode": "VISA",
        "vnp_BankTranNo": "VNP14422574",
        "vnp_CardType": "CREDIT",
        "vnp_PayDate": "20250305142959",
        "vnp_NotifyTime": format_vnp_time(now),
    }
    fields.update(overrides)
    return with_signature(fields, SECRET)


def test_a_fresh_signed_notification_is_read_into_typed_fields(now: datetime) -> None:
    note = parse_notification(ipn(now), SECRET, now=now, max_age=MAX_AGE, tmn_code="MYMOBI01")
    assert note.succeeded
    assert note.amount_vnd == 123_456
    assert note.txn_ref == "PAY-1"
    assert note.transaction_no == "14422574"
    assert note.pay_date == datetime(2025, 3, 5, 7, 29, 59, tzinfo=UTC)
    assert note.pay_date is not None and note.pay_date.utcoffset() == timedelta(0)
    assert note.notify_time == now
    assert note.response_message == "Transaction successful"


def test_a_failed_payment_is_a_valid_notification_that_did_not_succeed(now: datetime) -> None:
    note = parse_notification(
        ipn(now, vnp_ResponseCode="51", vnp_TransactionStatus="02"), SECRET, now=now, max_age=MAX_AGE
    )
    assert not note.succeeded
    assert note.response_message == "Insufficient funds"


def test_success_code_with_a_non_success_status_is_not_success(now: datetime) -> None:
    note = parse_notification(ipn(now, vnp_TransactionStatus="02"), SECRET, now=now, max_age=MAX_AGE)
    assert not note.succeeded


@pytest.mark.parametrize("field", ["vnp_Amount", "vnp_TxnRef", "vnp_ResponseCode", "vnp_NotifyTime"])
def test_tampered_fields_raise_bad_signature(now: datetime, field: str) -> None:
    params = ipn(now)
    params[field] = "20250305143001" if field == "vnp_NotifyTime" else params[field] + "1"
    with pytest.raises(BadSignature):
        parse_notification(params, SECRET, now=now, max_age=MAX_AGE)


def test_an_extra_or_dropped_field_raises_bad_signature(now: datetime) -> None:
    with pytest.raises(BadSignature):
        parse_notification({**ipn(now), "vnp_Injected": "1"}, SECRET, now=now, max_age=MAX_AGE)
    dropped = ipn(now)
    del dropped["vnp_BankCode"]
    with pytest.raises(BadSignature):
        parse_notification(dropped, SECRET, now=now, max_age=MAX_AGE)


def test_old_notification_is_stale(now: datetime) -> None:
    params = ipn(now - timedelta(minutes=6))
    with pytest.raises(Stale, match="ago"):
        parse_notification(params, SECRET, now=now, max_age=MAX_AGE)


def test_notification_from_the_future_beyond_clock_skew_is_stale(now: datetime) -> None:
    with pytest.raises(Stale, match="future"):
        parse_notification(ipn(now + timedelta(minutes=2)), SECRET, now=now, max_age=MAX_AGE)
    parse_notification(ipn(now + timedelta(seconds=30)), SECRET, now=now, max_age=MAX_AGE)


def test_notification_at_the_edge_of_the_window_is_accepted(now: datetime) -> None:
    parse_notification(ipn(now - MAX_AGE), SECRET, now=now, max_age=MAX_AGE)


def test_notification_without_notify_time_is_malformed(now: datetime) -> None:
    params = ipn(now)
    del params["vnp_NotifyTime"]
    with pytest.raises(Malformed, match="vnp_NotifyTime"):
        parse_notification(with_signature(params, SECRET), SECRET, now=now, max_age=MAX_AGE)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"vnp_Amount": "12345650"}, "whole number of dong"),
        ({"vnp_Amount": "-100"}, "not a whole number"),
        ({"vnp_Amount": "1e5"}, "not a whole number"),
        ({"vnp_ResponseCode": "0"}, "two digits"),
        ({"vnp_PayDate": "2025-03-05"}, "vnp_PayDate"),
        ({"vnp_NotifyTime": "yesterday"}, "vnp_NotifyTime"),
        ({"vnp_TmnCode": "OTHER001"}, "merchant"),
    ],
)
def test_signed_but_unreadable_fields_are_malformed(
    now: datetime, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(Malformed, match=message):
        parse_notification(ipn(now, **overrides), SECRET, now=now, max_age=MAX_AGE, tmn_code="MYMOBI01")


def test_signed_notification_missing_a_required_field_is_malformed(now: datetime) -> None:
    params = ipn(now)
    del params["vnp_TransactionStatus"]
    with pytest.raises(Malformed, match="vnp_TransactionStatus"):
        parse_notification(with_signature(params, SECRET), SECRET, now=now, max_age=MAX_AGE)


def test_signature_is_checked_before_anything_else(now: datetime) -> None:
    params = ipn(now - timedelta(days=1), vnp_Amount="oops")
    params["vnp_SecureHash"] = "0" * 128
    with pytest.raises(BadSignature):
        parse_notification(params, SECRET, now=now, max_age=MAX_AGE)


def test_return_redirect_needs_no_notify_time_and_ignores_merchant_params(now: datetime) -> None:
    params = ipn(now)
    del params["vnp_NotifyTime"]
    params = {**with_signature(params, SECRET), "lang": "vi"}
    note = parse_return(params, SECRET)
    assert note.notify_time is None
    assert "lang" not in note.signed_fields


def test_decode_query_refuses_repeated_parameters() -> None:
    assert decode_query(b"vnp_A=1&vnp_B=x+y") == {"vnp_A": "1", "vnp_B": "x y"}
    with pytest.raises(Malformed, match="vnp_Amount"):
        decode_query("vnp_Amount=100&vnp_Amount=999900")


def test_naive_now_is_a_programming_error(now: datetime) -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_notification(ipn(now), SECRET, now=now.replace(tzinfo=None), max_age=MAX_AGE)
