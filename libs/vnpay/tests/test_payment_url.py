from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import ValidationError

from vnpay import BankCode, GatewayConfig, OrderType, PaymentOrder, build_payment_url, verify

from .conftest import SECRET

CREATED = datetime(2025, 3, 5, 7, 30, 0, tzinfo=UTC)


def order(**overrides: Any) -> PaymentOrder:
    fields: dict[str, Any] = {
        "txn_ref": "PAY-01JNB7Q",
        "amount_vnd": 100_000,
        "order_info": "Nap tien 0901234567",
        "order_type": OrderType.TOPUP,
        "client_ip": "203.0.113.7",
        "bank_code": BankCode.INTERNATIONAL_CARD,
        "created_at": CREATED,
        "expires_at": CREATED + timedelta(minutes=15),
    }
    fields.update(overrides)
    return PaymentOrder(**fields)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


EXPECTED_QUERY = (
    "vnp_Amount=10000000&vnp_BankCode=INTCARD&vnp_Command=pay&vnp_CreateDate=20250305143000"
    "&vnp_CurrCode=VND&vnp_ExpireDate=20250305144500&vnp_IpAddr=203.0.113.7&vnp_Locale=vn"
    "&vnp_OrderInfo=Nap+tien+0901234567&vnp_OrderType=topup"
    "&vnp_ReturnUrl=http%3A%2F%2F127.0.0.1%3A8080%2Fpayments%2Freturn&vnp_TmnCode=MYMOBI01"
    "&vnp_TxnRef=PAY-01JNB7Q&vnp_Version=2.1.0"
)
EXPECTED_HASH = (
    "d53eb1e73a73d05cbc352adf4fd427e86eb0997ad6da4b2336b386ef2e012bd7"
    "d8596515be60ae5cce37775544b3795fb6d559aa85cc433fb1311ad2d1673e71"
)


def test_payment_url_is_the_expected_fixed_string(config: GatewayConfig) -> None:
    # The hash is HMAC-SHA512 of exactly the query string that precedes it.
    assert hmac.new(SECRET.encode(), EXPECTED_QUERY.encode(), hashlib.sha512).hexdigest() == EXPECTED_HASH
    assert build_payment_url(config, order()) == (
        f"http://127.0.0.1:8192/paymentv2/vpcpay.html?{EXPECTED_QUERY}&vnp_SecureHash={EXPECTED_HASH}"
    )


def test_payment_url_verifies_with_the_merchant_secret_only(config: GatewayConfig) -> None:
    params = query_of(build_payment_url(config, order()))
    assert verify(params, SECRET)
    assert not verify(params, "someone-else")


def test_amount_is_sent_in_hundredths_and_times_in_gmt7(config: GatewayConfig) -> None:
    hanoi = timezone(timedelta(hours=7))
    params = query_of(
        build_payment_url(
            config,
            order(
                amount_vnd=5_000,
                created_at=datetime(2025, 12, 31, 23, 59, 59, tzinfo=hanoi),
                expires_at=datetime(2026, 1, 1, 0, 14, 59, tzinfo=hanoi),
            ),
        )
    )
    assert params["vnp_Amount"] == "500000"
    assert params["vnp_CreateDate"] == "20251231235959"
    assert params["vnp_ExpireDate"] == "20260101001459"


def test_bank_code_is_omitted_when_the_customer_chooses_on_the_hosted_page(config: GatewayConfig) -> None:
    params = query_of(build_payment_url(config, order(bank_code=None)))
    assert "vnp_BankCode" not in params
    assert verify(params, SECRET)


def test_order_return_url_overrides_the_configured_one(config: GatewayConfig) -> None:
    params = query_of(build_payment_url(config, order(return_url="https://app.example/r?x=1")))
    assert params["vnp_ReturnUrl"] == "https://app.example/r?x=1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount_vnd": 4_999},
        {"amount_vnd": 1_000_000_000},
        {"amount_vnd": 10_000.0},
        {"amount_vnd": "10000"},
        {"order_info": "Nạp tiền"},
        {"order_info": "a*b"},
        {"order_info": ""},
        {"txn_ref": "has space"},
        {"client_ip": "not-an-ip"},
        {"created_at": datetime(2025, 3, 5, 7, 30)},
        {"expires_at": CREATED},
        {"bank_code": "intcard"},
        {"return_url": "javascript:alert(1)"},
    ],
)
def test_invalid_orders_are_refused_before_any_url_exists(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        order(**overrides)


def test_config_refuses_non_http_urls() -> None:
    with pytest.raises(ValidationError):
        GatewayConfig(tmn_code="MYMOBI01", hash_secret="x", pay_url="ftp://x", return_url="http://a")  # type: ignore[arg-type]


def test_config_keeps_the_secret_out_of_its_repr(config: GatewayConfig) -> None:
    assert SECRET not in repr(config)
