"""How notifications reach the merchant: encoding, stamping, retries, resends."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

from vnpay import parse_vnp_time, verify

from .conftest import FAST_RETRIES, SECRET, Env, Merchant, sandbox_env


async def test_ipn_is_a_form_post_with_a_fresh_signed_notify_time(env: Env) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    order = env.order()
    await env.pay(order)
    [ipn] = await env.merchant.wait_for(1)
    assert ipn.method == "POST"
    assert ipn.content_type == "application/x-www-form-urlencoded"
    assert verify(ipn.params, SECRET)
    stamped = parse_vnp_time(ipn.params["vnp_NotifyTime"])
    assert before <= stamped <= datetime.now(UTC)
    assert ipn.params["vnp_Amount"] == str(order.amount_vnd * 100)


async def test_ipn_can_be_sent_as_a_get_query_like_vnpay_does(merchant: Merchant) -> None:
    async with sandbox_env(merchant, ipn_method="GET") as env:
        order = env.order()
        await env.pay(order)
        [ipn] = await merchant.wait_for(1)
    assert ipn.method == "GET"
    assert merchant.codes() == ["00"]


async def test_retries_until_the_merchant_answers_00_then_stops(env: Env) -> None:
    env.merchant.scripted = [500, 503]
    order = env.order()
    await env.pay(order)
    [record] = await env.settled(order.txn_ref)
    assert record["status"] == "acknowledged"
    assert [a["http_status"] for a in record["attempts"]] == [500, 503, 200]
    assert record["attempts"][-1]["rsp_code"] == "00"
    await asyncio.sleep(sum(FAST_RETRIES) + 0.1)
    assert env.merchant.codes() == ["-", "-", "00"]  # nothing after the 00


async def test_answer_02_also_stops_the_retries(env: Env) -> None:
    env.merchant.scripted = ["99", "02"]
    order = env.order()
    await env.pay(order)
    [record] = await env.settled(order.txn_ref)
    assert [a["rsp_code"] for a in record["attempts"]] == ["99", "02"]
    assert record["status"] == "acknowledged"


async def test_refusals_and_unreadable_answers_are_retried(env: Env) -> None:
    env.merchant.scripted = ["97", "text", "01"]
    order = env.order()
    await env.pay(order)
    [record] = await env.settled(order.txn_ref)
    attempts = record["attempts"]
    assert [a["rsp_code"] for a in attempts] == ["97", None, "01", "00"]
    assert attempts[1]["error"] == "answer is not {RspCode, Message} JSON"


async def test_gives_up_after_the_configured_attempts(env: Env) -> None:
    env.merchant.scripted = [500] * 10
    order = env.order()
    await env.pay(order)
    [record] = await env.settled(order.txn_ref)
    assert record["status"] == "unacknowledged"
    assert len(record["attempts"]) == record["max_attempts"] == 1 + len(FAST_RETRIES)


async def test_unreachable_merchant_is_recorded_as_transport_errors(merchant: Merchant) -> None:
    async with sandbox_env(merchant, ipn_url="http://127.0.0.1:9/ipn", ipn_retry_delays_s=[0.01]) as env:
        order = env.order()
        paid = await env.pay(order)
        [record] = await env.settled(order.txn_ref)
    assert paid["response_code"] == "00"  # the customer still gets the result
    assert record["status"] == "unacknowledged"
    for attempt in record["attempts"]:
        assert attempt["http_status"] is None
        assert attempt["error"].startswith("ClientConnectorError"), attempt["error"]


async def test_each_retry_is_re_stamped_and_re_signed(merchant: Merchant) -> None:
    ticks = itertools.count()

    def clock() -> datetime:  # every reading is one second later than the last
        return datetime.now(UTC) + timedelta(seconds=next(ticks))

    async with sandbox_env(merchant, clock=clock) as env:
        merchant.scripted = [500, 500]
        order = env.order()
        await env.pay(order)
        await env.settled(order.txn_ref)
    assert merchant.codes() == ["-", "-", "00"]
    stamps = [parse_vnp_time(r.params["vnp_NotifyTime"]) for r in merchant.received]
    assert stamps == sorted(set(stamps))  # strictly later on every attempt
    assert all(verify(r.params, SECRET) for r in merchant.received)


async def test_redirect_can_race_the_ipn_when_configured(merchant: Merchant) -> None:
    async with sandbox_env(merchant, redirect_waits_for_ipn=False, ipn_retry_delays_s=[]) as env:
        order = env.order()
        await env.pay(order)
        await merchant.wait_for(1)
    assert merchant.codes() == ["00"]


async def test_resend_delivers_the_current_result_again_with_a_new_stamp(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    await env.merchant.wait_for(1)
    response = await env.http.post(f"{env.base_url}/sandbox/notifications/{order.txn_ref}/resend")
    assert response.status_code == 200
    record = response.json()
    assert record["kind"] == "resend"
    assert record["merchant_answer"]["RspCode"] == "02"  # the merchant already had it
    assert verify(record["params"], SECRET)


async def test_resend_refuses_unknown_and_undecided_payments(env: Env) -> None:
    missing = await env.http.post(f"{env.base_url}/sandbox/notifications/NOPE/resend")
    assert missing.status_code == 404
    order = env.order()
    await env.http.get(env.url(order))
    pending = await env.http.post(f"{env.base_url}/sandbox/notifications/{order.txn_ref}/resend")
    assert pending.status_code == 409


async def test_sandbox_view_of_a_transaction_lists_its_notifications(env: Env) -> None:
    order = env.order()
    paid = await env.pay(order)
    await env.settled(order.txn_ref)
    view = (await env.http.get(f"{env.base_url}/sandbox/transactions/{order.txn_ref}")).json()
    assert view["transaction_status"] == "00"
    assert view["transaction_no"] == paid["transaction_no"]
    assert view["masked_card"] == "411111******1111"
    assert [n["status"] for n in view["notifications"]] == ["acknowledged"]
    assert (await env.http.get(f"{env.base_url}/sandbox/transactions/NOPE")).status_code == 404
