"""Payment provider protocol, VNPay 2.1.0 style: signed payment URLs, IPNs, return redirects, querydr.

Pure functions plus one async HTTP client (`QueryClient`). Extension to VNPay: notifications carry a
signed `vnp_NotifyTime` so replays can be refused (see `parse_notification`).
"""

from .codes import (
    CURRENCY,
    MAX_AMOUNT_VND,
    MIN_AMOUNT_VND,
    VERSION,
    BankCode,
    OrderType,
    QueryResponseCode,
    ResponseCode,
    TransactionStatus,
    describe_response,
)
from .errors import BadSignature, InvalidMessage, Malformed, QueryFailed, Stale, VnpayError
from .ipn import IpnAnswer
from .notification import NOTIFY_TIME, Notification, decode_query, parse_notification, parse_return
from .payment_url import GatewayConfig, PaymentOrder, build_payment_url, payment_params
from .querydr import (
    QueryClient,
    QueryResult,
    build_query_request,
    parse_query_response,
    sign_query_response,
    verify_query_request,
)
from .signing import SECURE_HASH, canonical_query, sign, verify, with_signature
from .vntime import VN_TZ, format_vnp_time, parse_vnp_time

__all__ = [
    "CURRENCY",
    "MAX_AMOUNT_VND",
    "MIN_AMOUNT_VND",
    "NOTIFY_TIME",
    "SECURE_HASH",
    "VERSION",
    "VN_TZ",
    "BadSignature",
    "BankCode",
    "GatewayConfig",
    "InvalidMessage",
    "IpnAnswer",
    "Malformed",
    "Notification",
    "OrderType",
    "PaymentOrder",
    "QueryClient",
    "QueryFailed",
    "QueryResponseCode",
    "QueryResult",
    "ResponseCode",
    "Stale",
    "TransactionStatus",
    "VnpayError",
    "build_payment_url",
    "build_query_request",
    "canonical_query",
    "decode_query",
    "describe_response",
    "format_vnp_time",
    "parse_notification",
    "parse_query_response",
    "parse_return",
    "parse_vnp_time",
    "payment_params",
    "sign",
    "sign_query_response",
    "verify",
    "verify_query_request",
    "with_signature",
]
