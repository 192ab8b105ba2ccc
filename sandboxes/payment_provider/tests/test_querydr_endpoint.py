"""The status API, exercised with the `vnpay` library's QueryClient as the payment service will."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from vnpay import (
    BadSignature,
    GatewayConfig,
    PaymentOrder,
    QueryClient,
    QueryResult,
    build_query_request,
    parse_query_response,
)

from .conftest import SECRET, Env


async def query(env: Env, order: PaymentOrder, **overrides: Any) -> QueryResult:
    fields: dict[str, Any] = {
        "txn_ref": order.txn_ref,
        "transaction_date": order.created_at,
        "order_info": f"Query {order.txn_ref}",
        "ip_addr": "10.0.0.5",
        "now": datetime.now(UTC),
    }
    fields.update(overrides)
    async with QueryClient(env.gateway) as client:
        return await client.query(**fields)


def signed_body(gateway: GatewayConfig, order: PaymentOrder, **extra: str) -> dict[str, str]:
    """A querydr request for `order`, signed with `gateway`'s secret."""
    return build_query_request(
        gateway, txn_ref=order.txn_ref, transaction_date=order.created_at, order_info="q",
        ip_addr="1.1.1.1", now=datetime.now(UTC), **extra,
    )  # fmt: skip


async def post_raw(env: Env, body: Any) -> dict[str, str]:
    response = await env.http.post(f"{env.base_url}/merchant_webapi/api/transaction", json=body)
    assert response.status_code == 200
    answer: dict[str, str] = response.json()
    parse_query_response(answer, SECRET, txn_ref=answer.get("vnp_TxnRef", ""))  # every answer is signed
    return answer


async def test_query_reports_a_paid_transaction_like_its_ipn(env: Env) -> None:
    order = env.order(amount_vnd=250_000)
    paid = await env.pay(order)
    result = await query(env, order)
    assert result.found and result.paid
    assert result.amount_vnd == 250_000
    assert result.transaction_no == paid["transaction_no"]
    assert result.transaction_type == "01"
    assert result.pay_date is not None


async def test_query_reports_a_failed_payment(env: Env) -> None:
    order = env.order()
    await env.pay(order, card="4000000000009995")
    result = await query(env, order)
    assert result.found and not result.paid
    assert result.transaction_status == "02"


async def test_query_reports_an_opened_but_unpaid_payment_as_pending(env: Env) -> None:
    order = env.order()
    await env.http.get(env.url(order))
    result = await query(env, order)
    assert (result.found, result.transaction_status, result.pay_date) == (True, "01", None)


async def test_query_is_the_source_of_truth_when_the_ipn_was_dropped(env: Env) -> None:
    await env.switch(drop=True)
    order = env.order()
    await env.pay(order)
    assert env.merchant.received == []
    assert (await query(env, order)).paid


async def test_unknown_txn_ref_or_wrong_transaction_date_is_not_found(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    assert (await query(env, order, txn_ref="NOPE")).response_code == "91"
    wrong_date = order.created_at - timedelta(days=1)
    assert (await query(env, order, transaction_date=wrong_date)).response_code == "91"


async def test_request_signed_with_another_secret_gets_97(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    forged = env.gateway.model_copy(update={"hash_secret": SecretStr("guess")})
    answer = await post_raw(env, signed_body(forged, order))
    assert answer["vnp_ResponseCode"] == "97"
    assert "vnp_Amount" not in answer  # nothing disclosed


async def test_reused_request_id_gets_94(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    body = signed_body(env.gateway, order, request_id="same-id")
    assert (await post_raw(env, body))["vnp_ResponseCode"] == "00"
    assert (await post_raw(env, body))["vnp_ResponseCode"] == "94"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"vnp_Command": "querydr"}, "03"),
        ([1, 2], "03"),
        ("not json at all", "03"),
    ],
)
async def test_malformed_requests_get_a_signed_03(env: Env, body: Any, code: str) -> None:
    assert (await post_raw(env, body))["vnp_ResponseCode"] == code


async def test_other_merchant_code_gets_02(env: Env) -> None:
    order = env.order()
    other = env.gateway.model_copy(update={"tmn_code": "OTHER001"})
    assert (await post_raw(env, signed_body(other, order)))["vnp_ResponseCode"] == "02"


async def test_client_refuses_an_answer_signed_with_another_secret(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    wrong = env.gateway.model_copy(update={"hash_secret": SecretStr("not-the-provider-secret")})
    async with QueryClient(wrong) as client:
        with pytest.raises(BadSignature):
            await client.query(
                txn_ref=order.txn_ref, transaction_date=order.created_at, order_info="q",
                ip_addr="1.1.1.1", now=datetime.now(UTC),
            )  # fmt: skip


async def test_query_reports_in_progress_until_a_late_confirmation_goes_out(env: Env) -> None:
    await env.switch(query_in_progress=True, delay_s=1.0)
    order = env.order()
    await env.pay(order)
    in_progress = await query(env, order)
    assert (in_progress.found, in_progress.transaction_status, in_progress.paid) == (True, "01", False)
    await env.merchant.wait_for(1, timeout=5)
    assert (await query(env, order)).paid


async def test_query_reports_an_unpaid_transaction_past_its_window_as_not_paid(env: Env) -> None:
    # The provider's dates have whole seconds: a 1 s window could be 0.1 s once truncated,
    # so give 3 s (at least 2 s after truncation) and then wait until it is surely over.
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=3)
    order = env.order(created_at=now, expires_at=expires_at)
    await env.http.get(env.url(order))
    assert (await query(env, order)).transaction_status == "01"  # the customer may still pay
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 1.1)
    result = await query(env, order)
    assert (result.found, result.transaction_status, result.paid) == (True, "02", False)
    assert result.pay_date is None
