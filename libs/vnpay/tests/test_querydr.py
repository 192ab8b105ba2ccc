from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vnpay import (
    BadSignature,
    GatewayConfig,
    Malformed,
    QueryClient,
    QueryFailed,
    build_query_request,
    parse_query_response,
    sign_query_response,
    verify_query_request,
)

from .conftest import SECRET, serve

PAID_AT = datetime(2025, 3, 5, 7, 29, 59, tzinfo=UTC)
CREATED = datetime(2025, 3, 5, 7, 25, 0, tzinfo=UTC)


def request_body(config: GatewayConfig, now: datetime) -> dict[str, str]:
    return build_query_request(
        config,
        txn_ref="PAY-1",
        transaction_date=CREATED,
        order_info="Query PAY-1",
        ip_addr="10.0.0.5",
        now=now,
        request_id="req-0001",
    )


def provider_answer(txn_ref: str = "PAY-1", **overrides: str) -> dict[str, str]:
    body = {
        "vnp_ResponseId": "resp-1",
        "vnp_Command": "querydr",
        "vnp_ResponseCode": "00",
        "vnp_Message": "QueryDR Success",
        "vnp_TmnCode": "MYMOBI01",
        "vnp_TxnRef": txn_ref,
        "vnp_Amount": "10000000",
        "vnp_BankCode": "VISA",
        "vnp_PayDate": "20250305142959",
        "vnp_TransactionNo": "14422574",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "00",
        "vnp_OrderInfo": "Nap tien",
    }
    body.update(overrides)
    return sign_query_response(body, SECRET)


async def query_once(client: QueryClient, now: datetime) -> None:
    await client.query(txn_ref="P", transaction_date=CREATED, order_info="q", ip_addr="1.1.1.1", now=now)


def test_query_request_signs_the_documented_pipe_string(config: GatewayConfig, now: datetime) -> None:
    body = request_body(config, now)
    data = "req-0001|2.1.0|querydr|MYMOBI01|PAY-1|20250305142500|20250305143000|10.0.0.5|Query PAY-1"
    assert body["vnp_SecureHash"] == hmac.new(SECRET.encode(), data.encode(), hashlib.sha512).hexdigest()
    assert verify_query_request(body, SECRET)


@pytest.mark.parametrize("field", ["vnp_TxnRef", "vnp_TransactionDate", "vnp_RequestId", "vnp_TmnCode"])
def test_tampered_query_request_fails_verification(config: GatewayConfig, now: datetime, field: str) -> None:
    body = request_body(config, now)
    body[field] += "9"
    assert not verify_query_request(body, SECRET)


def test_response_is_verified_and_converted(now: datetime) -> None:
    result = parse_query_response(provider_answer(), SECRET, txn_ref="PAY-1")
    assert result.found and result.paid
    assert result.amount_vnd == 100_000
    assert result.pay_date == PAID_AT
    assert result.transaction_no == "14422574"


def test_not_found_is_an_answer_not_an_error() -> None:
    body = sign_query_response(
        {"vnp_ResponseId": "r", "vnp_Command": "querydr", "vnp_ResponseCode": "91", "vnp_Message": "x"},
        SECRET,
    )
    result = parse_query_response(body, SECRET, txn_ref="PAY-1")
    assert not result.found and not result.paid
    assert result.amount_vnd is None


def test_response_with_a_changed_status_fails_verification() -> None:
    body = provider_answer()
    body["vnp_TransactionStatus"] = "02"
    with pytest.raises(BadSignature):
        parse_query_response(body, SECRET, txn_ref="PAY-1")


def test_response_about_another_transaction_is_malformed() -> None:
    with pytest.raises(Malformed, match="another"):
        parse_query_response(provider_answer(txn_ref="PAY-2"), SECRET, txn_ref="PAY-1")


async def test_client_queries_a_real_http_endpoint(config: GatewayConfig, now: datetime) -> None:
    seen: list[dict[str, Any]] = []

    async def endpoint(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        if not verify_query_request(body, SECRET):
            return JSONResponse(sign_query_response({"vnp_ResponseCode": "97"}, SECRET))
        return JSONResponse(provider_answer(txn_ref=body["vnp_TxnRef"]))

    app = Starlette(routes=[Route("/merchant_webapi/api/transaction", endpoint, methods=["POST"])])
    async with serve(app) as base:
        api = config.model_copy(update={"api_url": f"{base}/merchant_webapi/api/transaction"})
        async with QueryClient(api) as client:
            first = await client.query(
                txn_ref="PAY-1", transaction_date=CREATED, order_info="q", ip_addr="10.0.0.5", now=now
            )
            second = await client.query(
                txn_ref="PAY-1", transaction_date=CREATED, order_info="q", ip_addr="10.0.0.5", now=now
            )
    assert first.paid and second.paid
    assert seen[0]["vnp_Command"] == "querydr"
    assert seen[0]["vnp_RequestId"] != seen[1]["vnp_RequestId"]


async def test_client_reports_http_errors_and_non_json_as_query_failed(
    config: GatewayConfig, now: datetime
) -> None:
    async def broken(request: Request) -> Response:
        return PlainTextResponse("oops", status_code=500 if "500" in request.url.path else 200)

    app = Starlette(routes=[Route("/{kind}", broken, methods=["POST"])])
    async with serve(app) as base:
        for path, message in (("/500", "HTTP 500"), ("/text", "not JSON")):
            api = config.model_copy(update={"api_url": base + path})
            async with QueryClient(api) as client:
                with pytest.raises(QueryFailed, match=message):
                    await query_once(client, now)


async def test_client_reports_connection_refused_as_query_failed(
    config: GatewayConfig, now: datetime
) -> None:
    api = config.model_copy(update={"api_url": "http://127.0.0.1:9/merchant_webapi/api/transaction"})
    async with QueryClient(api) as client:
        with pytest.raises(QueryFailed, match="transport"):
            await query_once(client, now)


def test_client_needs_an_api_url(config: GatewayConfig) -> None:
    with pytest.raises(ValueError, match="api_url"):
        QueryClient(config.model_copy(update={"api_url": None}))
