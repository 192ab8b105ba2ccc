"""querydr: ask the provider for the true status of a transaction (POST JSON, pipe-joined HMAC).

Used by reconciliation: when an IPN never arrived (or was refused), the provider's answer here is
the source of truth. Both sides live here so the merchant client and the sandbox share one
definition of the signed field order.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict

from .codes import QueryResponseCode, TransactionStatus
from .errors import BadSignature, Malformed, QueryFailed
from .payment_url import GatewayConfig
from .signing import SECURE_HASH, sign_pipe, verify_pipe
from .vntime import format_vnp_time, parse_vnp_time

COMMAND = "querydr"
REQUEST_SIGNED_FIELDS = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
RESPONSE_SIGNED_FIELDS = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)


class QueryResult(BaseModel):
    """The provider's verified answer. `found` is about the query; `paid` is about the money."""

    model_config = ConfigDict(frozen=True)

    response_code: str
    message: str
    txn_ref: str | None
    amount_vnd: int | None
    transaction_status: str | None
    transaction_no: str | None
    transaction_type: str | None
    bank_code: str | None
    pay_date: AwareDatetime | None
    order_info: str | None
    raw: dict[str, str]

    @property
    def found(self) -> bool:
        return self.response_code == QueryResponseCode.SUCCESS

    @property
    def paid(self) -> bool:
        return self.found and self.transaction_status == TransactionStatus.SUCCESS


def _values(body: Mapping[str, Any], fields: tuple[str, ...]) -> list[str | None]:
    return [None if body.get(name) is None else str(body[name]) for name in fields]


def build_query_request(
    config: GatewayConfig,
    *,
    txn_ref: str,
    transaction_date: datetime,
    order_info: str,
    ip_addr: str,
    now: datetime,
    request_id: str | None = None,
    transaction_no: str | None = None,
) -> dict[str, str]:
    """Signed querydr body. `transaction_date` is the payment's vnp_CreateDate (the provider
    looks the transaction up by it); `request_id` must be unique per query."""
    body = {
        "vnp_RequestId": request_id or secrets.token_hex(16),
        "vnp_Version": config.version,
        "vnp_Command": COMMAND,
        "vnp_TmnCode": config.tmn_code,
        "vnp_TxnRef": txn_ref,
        "vnp_TransactionDate": format_vnp_time(transaction_date),
        "vnp_CreateDate": format_vnp_time(now),
        "vnp_IpAddr": ip_addr,
        "vnp_OrderInfo": order_info,
    }
    if transaction_no:
        body["vnp_TransactionNo"] = transaction_no
    body[SECURE_HASH] = sign_pipe(_values(body, REQUEST_SIGNED_FIELDS), config.secret)
    return body


def _verify(body: Mapping[str, Any], fields: tuple[str, ...], secret: str) -> bool:
    return verify_pipe(_values(body, fields), str(body.get(SECURE_HASH) or ""), secret)


def verify_query_request(body: Mapping[str, Any], secret: str) -> bool:
    """Provider side: does the request's vnp_SecureHash match?"""
    return _verify(body, REQUEST_SIGNED_FIELDS, secret)


def sign_query_response(body: Mapping[str, str], secret: str) -> dict[str, str]:
    """Provider side: the response body plus its vnp_SecureHash."""
    signed = dict(body)
    signed[SECURE_HASH] = sign_pipe(_values(body, RESPONSE_SIGNED_FIELDS), secret)
    return signed


def parse_query_response(body: Mapping[str, Any], secret: str, *, txn_ref: str) -> QueryResult:
    """Verify and read a querydr answer. Raises BadSignature or Malformed."""
    if not _verify(body, RESPONSE_SIGNED_FIELDS, secret):
        raise BadSignature("querydr response: vnp_SecureHash missing or wrong")
    raw = {key: str(value) for key, value in body.items() if value is not None and key != SECURE_HASH}
    code = raw.get("vnp_ResponseCode", "")
    if not code:
        raise Malformed("querydr response without vnp_ResponseCode")
    if code == QueryResponseCode.SUCCESS and raw.get("vnp_TxnRef") != txn_ref:
        raise Malformed("querydr response is about another vnp_TxnRef")
    return QueryResult(
        response_code=code,
        message=raw.get("vnp_Message", ""),
        txn_ref=raw.get("vnp_TxnRef"),
        amount_vnd=_amount(raw.get("vnp_Amount")),
        transaction_status=raw.get("vnp_TransactionStatus") or None,
        transaction_no=raw.get("vnp_TransactionNo") or None,
        transaction_type=raw.get("vnp_TransactionType") or None,
        bank_code=raw.get("vnp_BankCode") or None,
        pay_date=_time(raw.get("vnp_PayDate")),
        order_info=raw.get("vnp_OrderInfo"),
        raw=raw,
    )


def _amount(wire: str | None) -> int | None:
    if not wire:
        return None
    if not (wire.isascii() and wire.isdigit()) or int(wire) % 100:
        raise Malformed(f"querydr vnp_Amount is not a whole number of dong: {wire[:20]!r}")
    return int(wire) // 100


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_vnp_time(text)
    except ValueError as exc:
        raise Malformed(f"querydr vnp_PayDate: {exc}") from None


class QueryClient:
    """Async querydr client. Pass your own httpx.AsyncClient to share a pool, or let it own one."""

    def __init__(
        self, config: GatewayConfig, *, http: httpx.AsyncClient | None = None, timeout_s: float = 10.0
    ) -> None:
        if config.api_url is None:
            raise ValueError("GatewayConfig.api_url is required for status queries")
        self._config = config
        self._api_url = config.api_url
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    async def query(
        self,
        *,
        txn_ref: str,
        transaction_date: datetime,
        order_info: str,
        ip_addr: str,
        now: datetime,
        transaction_no: str | None = None,
    ) -> QueryResult:
        """The provider's view of `txn_ref`. Raises QueryFailed, BadSignature or Malformed."""
        body = build_query_request(
            self._config,
            txn_ref=txn_ref,
            transaction_date=transaction_date,
            order_info=order_info,
            ip_addr=ip_addr,
            now=now,
            transaction_no=transaction_no,
        )
        answer = await self._post(body)
        return parse_query_response(answer, self._config.secret, txn_ref=txn_ref)

    async def _post(self, body: dict[str, str]) -> Mapping[str, Any]:
        try:
            response = await self._http.post(self._api_url, json=body)
        except httpx.HTTPError as exc:
            raise QueryFailed(f"querydr transport error: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise QueryFailed(f"querydr HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise QueryFailed("querydr answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise QueryFailed("querydr answer is not a JSON object")
        return answer

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> QueryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
