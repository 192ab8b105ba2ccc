"""Switches make delivery misbehave on purpose; each test proves one does what it says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from vnpay import parse_vnp_time, verify

from .conftest import SECRET, Env


async def test_duplicates_deliver_the_identical_signed_ipn_n_times(env: Env) -> None:
    await env.switch(copies=3)
    order = env.order()
    await env.pay(order)
    received = await env.merchant.wait_for(3)
    await env.settled(order.txn_ref)
    assert len(received) == 3
    assert received[0].params == received[1].params == received[2].params
    assert env.merchant.codes() == ["00", "02", "02"]
    kinds = [r["kind"] for r in await env.notifications(order.txn_ref)]
    assert kinds == ["genuine", "duplicate", "duplicate"]


async def test_concurrent_duplicates_are_in_flight_together(env: Env) -> None:
    await env.switch(copies=5, concurrent=True)
    order = env.order()
    await env.pay(order)
    received = await env.merchant.wait_for(5)
    spread = max(r.at for r in received) - min(r.at for r in received)
    assert spread.total_seconds() < 0.5
    assert sorted(env.merchant.codes()) == ["00", "02", "02", "02", "02"]


async def test_late_delivery_lets_the_redirect_come_first(env: Env) -> None:
    await env.switch(delay_s=1.0)
    order = env.order()
    await env.pay(order)
    assert env.merchant.received == []
    [record] = await env.notifications(order.txn_ref)
    assert record["status"] == "pending"
    await env.merchant.wait_for(1, timeout=3)
    assert env.merchant.codes() == ["00"]


async def test_failure_after_success_sends_a_signed_contradiction_for_the_same_order(env: Env) -> None:
    await env.switch(out_of_order="failure_after_success")
    order = env.order()
    await env.pay(order)
    success, failure = await env.merchant.wait_for(2)
    assert (success.params["vnp_ResponseCode"], failure.params["vnp_ResponseCode"]) == ("00", "99")
    assert failure.params["vnp_TransactionStatus"] == "02"
    assert failure.params["vnp_TxnRef"] == order.txn_ref
    assert verify(failure.params, SECRET)
    assert parse_vnp_time(failure.params["vnp_NotifyTime"]) >= parse_vnp_time(
        success.params["vnp_NotifyTime"]
    )
    assert env.merchant.codes() == ["00", "02"]  # the merchant kept the success
    assert env.merchant.confirmed[order.txn_ref].succeeded


async def test_swap_with_next_delivers_the_second_payment_first(env: Env) -> None:
    await env.switch(out_of_order="swap_with_next")
    first, second = env.order(), env.order()
    await env.pay(first)
    [held] = await env.notifications(first.txn_ref)
    assert held["status"] == "held"
    assert env.merchant.received == []

    await env.pay(second)
    received = await env.merchant.wait_for(2)
    assert [r.params["vnp_TxnRef"] for r in received] == [second.txn_ref, first.txn_ref]
    assert env.merchant.codes() == ["00", "00"]


async def test_resend_releases_a_held_notification(env: Env) -> None:
    await env.switch(out_of_order="swap_with_next")
    order = env.order()
    await env.pay(order)
    released = await env.http.post(f"{env.base_url}/sandbox/notifications/{order.txn_ref}/resend")
    assert released.json()["kind"] == "genuine"
    assert env.merchant.codes() == ["00"]
    assert len(await env.notifications(order.txn_ref)) == 1


async def test_forged_signature_is_refused_and_the_genuine_ipn_follows(env: Env) -> None:
    await env.switch(tamper="signature")
    order = env.order()
    await env.pay(order)
    forged, _genuine = await env.merchant.wait_for(2)
    assert not verify(forged.params, SECRET)
    assert env.merchant.codes() == ["97", "00"]
    kinds = [r["kind"] for r in await env.settled(order.txn_ref)]
    assert kinds == ["tampered_signature", "genuine"]


async def test_wrong_amount_is_correctly_signed_and_refused_on_amount(env: Env) -> None:
    await env.switch(tamper="amount")
    order = env.order(amount_vnd=100_000)
    await env.pay(order)
    wrong, _genuine = await env.merchant.wait_for(2)
    assert verify(wrong.params, SECRET)
    assert wrong.params["vnp_Amount"] == str(101_000 * 100)
    assert env.merchant.codes() == ["04", "00"]


async def test_stale_notification_is_refused_by_the_freshness_check(env: Env) -> None:
    await env.switch(stale_age_s=3600)
    order = env.order()
    await env.pay(order)
    stale, _genuine = await env.merchant.wait_for(2)
    assert verify(stale.params, SECRET)
    age = datetime.now(UTC) - parse_vnp_time(stale.params["vnp_NotifyTime"])
    assert 3590 <= age.total_seconds() <= 3700
    assert env.merchant.codes() == ["97", "00"]


async def test_injection_alone_when_then_genuine_is_false(env: Env) -> None:
    await env.switch(tamper="signature", then_genuine=False)
    order = env.order()
    await env.pay(order)
    await env.settled(order.txn_ref)
    assert env.merchant.codes() == ["97"]


async def test_drop_sends_nothing_but_the_customer_still_gets_the_redirect(env: Env) -> None:
    await env.switch(drop=True)
    order = env.order()
    paid = await env.pay(order)
    assert paid["response_code"] == "00" and paid["return_url"].startswith(env.merchant.base_url)
    await asyncio.sleep(0.3)
    assert env.merchant.received == []
    assert await env.notifications(order.txn_ref) == []


async def test_switch_for_a_txn_ref_applies_only_to_that_payment(env: Env) -> None:
    first, second = env.order(), env.order()
    await env.switch(txn_ref=second.txn_ref, drop=True)
    await env.pay(first)
    await env.pay(second)
    await asyncio.sleep(0.2)
    assert [r.params["vnp_TxnRef"] for r in env.merchant.received] == [first.txn_ref]


async def test_txn_ref_switch_wins_over_a_global_one(env: Env) -> None:
    order = env.order()
    await env.switch(copies=2)
    await env.switch(txn_ref=order.txn_ref, drop=True)
    await env.pay(order)
    await asyncio.sleep(0.2)
    assert env.merchant.received == []
    [still_there] = (await env.http.get(f"{env.base_url}/sandbox/switches")).json()
    assert still_there["copies"] == 2 and still_there["remaining"] == 1


async def test_global_switch_applies_to_the_next_n_payments_then_expires(env: Env) -> None:
    await env.switch(drop=True, times=2)
    orders = [env.order() for _ in range(3)]
    for order in orders:
        await env.pay(order)
    await env.merchant.wait_for(1)
    await asyncio.sleep(0.2)
    assert [r.params["vnp_TxnRef"] for r in env.merchant.received] == [orders[2].txn_ref]
    assert (await env.http.get(f"{env.base_url}/sandbox/switches")).json() == []


async def test_switch_api_lists_removes_and_validates(env: Env) -> None:
    switch = await env.switch(delay_s=1, times=None)
    listed = (await env.http.get(f"{env.base_url}/sandbox/switches")).json()
    assert [s["id"] for s in listed] == [switch["id"]]
    assert (await env.http.delete(f"{env.base_url}/sandbox/switches/{switch['id']}")).status_code == 204
    assert (await env.http.delete(f"{env.base_url}/sandbox/switches/{switch['id']}")).status_code == 404
    for bad in (
        {"drop": True, "copies": 2},
        {"out_of_order": "swap_with_next", "delay_s": 1},
        {"copies": 0},
        {"concurrent": True},
        {"tamper": "other"},
        {"then_genuine": False},
        {"delay_s": -1},
        {"unknown": 1},
    ):
        response = await env.http.post(f"{env.base_url}/sandbox/switches", json=bad)
        assert response.status_code == 422, bad


async def test_state_reset_forgets_transactions_notifications_and_switches(env: Env) -> None:
    await env.switch(delay_s=5, times=None)
    order = env.order()
    await env.pay(order)
    assert (await env.http.delete(f"{env.base_url}/sandbox/state")).status_code == 204
    assert (await env.http.get(f"{env.base_url}/sandbox/transactions")).json() == []
    assert await env.notifications() == []
    assert (await env.http.get(f"{env.base_url}/sandbox/switches")).json() == []
    await asyncio.sleep(0.1)
    assert env.merchant.received == []  # the delayed delivery was cancelled
