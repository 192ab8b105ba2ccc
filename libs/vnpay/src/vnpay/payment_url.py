"""Building the signed payment URL that sends the customer to the provider's hosted page."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .codes import CURRENCY, MAX_AMOUNT_VND, MIN_AMOUNT_VND, VERSION
from .signing import SECURE_HASH, canonical_query, sign
from .vntime import format_vnp_time

# VNPay wants order info "in Vietnamese without accents and without special characters". Keeping
# to this set also sidesteps the characters ('*', '~') that VNPay's own samples URL-encode
# differently from one language to another, which would make the provider compute another hash.
_ORDER_INFO = re.compile(r"^[A-Za-z0-9 .,:;_#/()+-]{1,255}$")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value[:80]!r}")
    return value


class GatewayConfig(BaseModel):
    """The merchant's account at the provider."""

    model_config = ConfigDict(frozen=True)

    tmn_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,16}$")]
    hash_secret: SecretStr
    pay_url: str  # the hosted page, e.g. https://sandbox.vnpayment.vn/paymentv2/vpcpay.html
    return_url: str  # where the browser comes back; an order may override it
    api_url: str | None = None  # merchant_webapi/api/transaction, for querydr
    version: str = VERSION

    @field_validator("pay_url", "return_url")
    @classmethod
    def _check_urls(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @property
    def secret(self) -> str:
        return self.hash_secret.get_secret_value()


class PaymentOrder(BaseModel):
    """One payment attempt. `txn_ref` must be unique per merchant (the provider refuses reuse)."""

    model_config = ConfigDict(frozen=True)

    txn_ref: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
    amount_vnd: Annotated[int, Field(strict=True, ge=MIN_AMOUNT_VND, le=MAX_AMOUNT_VND)]
    order_info: str
    order_type: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,100}$")] = "other"
    locale: Literal["vn", "en"] = "vn"
    client_ip: str
    bank_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{3,20}$")] | None = None  # e.g. BankCode.*
    created_at: AwareDatetime
    expires_at: AwareDatetime
    return_url: str | None = None

    @field_validator("order_info")
    @classmethod
    def _check_order_info(cls, value: str) -> str:
        if not _ORDER_INFO.fullmatch(value):
            raise ValueError("order_info: 1-255 chars of ASCII letters, digits, spaces and .,:;_#/()+-")
        return value

    @field_validator("client_ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))

    @field_validator("return_url")
    @classmethod
    def _check_return_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _check_window(self) -> Self:
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        return self


def payment_params(config: GatewayConfig, order: PaymentOrder) -> dict[str, str]:
    """The unsigned vnp_* parameters of a payment request."""
    params = {
        "vnp_Version": config.version,
        "vnp_Command": "pay",
        "vnp_TmnCode": config.tmn_code,
        "vnp_Amount": str(order.amount_vnd * 100),  # the wire amount has two implied decimals
        "vnp_CurrCode": CURRENCY,
        "vnp_TxnRef": order.txn_ref,
        "vnp_OrderInfo": order.order_info,
        "vnp_OrderType": order.order_type,
        "vnp_Locale": order.locale,
        "vnp_ReturnUrl": order.return_url or config.return_url,
        "vnp_IpAddr": order.client_ip,
        "vnp_CreateDate": format_vnp_time(order.created_at),
        "vnp_ExpireDate": format_vnp_time(order.expires_at),
    }
    if order.bank_code:
        params["vnp_BankCode"] = order.bank_code
    return params


def build_payment_url(config: GatewayConfig, order: PaymentOrder) -> str:
    """The URL to redirect the customer to: pay_url?<canonical query>&vnp_SecureHash=<hmac>."""
    params = payment_params(config, order)
    separator = "&" if urlsplit(config.pay_url).query else "?"
    return f"{config.pay_url}{separator}{canonical_query(params)}&{SECURE_HASH}={sign(params, config.secret)}"
