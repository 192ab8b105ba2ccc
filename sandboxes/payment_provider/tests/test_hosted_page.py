"""The hosted payment page driven over HTTP the way a browser would: GET, form posts, 302s."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from vnpay import build_payment_url, parse_return

from .conftest import SECRET, Env


def action_of(html: str) -> str:
    match = re.search(r"<form method='post' action='([^']+)'", html)
    assert match, html
    return match.group(1)


def result_of(location: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(location).query))


async def open_page(env: Env, url: str) -> httpx.Response:
    return await env.http.get(url)


async def post_form(env: Env, path: str, form: dict[str, str]) -> httpx.Response:
    return await env.http.post(f"{env.base_url}{path}", data=form)


def intl_card(number: str) -> dict[str, str]:
    return {"card_number": number, "card_holder": "NGUYEN VAN A", "card_expiry": "12/35", "card_cvv": "123"}


async def test_payment_page_shows_order_a_plain_card_form_and_the_test_cards(env: Env) -> None:
    order = env.order(amount_vnd=123_000)
    page = await open_page(env, env.url(order))
    assert page.status_code == 200
    assert "123,000 VND" in page.text
    assert order.txn_ref in page.text
    assert action_of(page.text).startswith("/paymentv2/checkout/")
    for number in ("4111111111111111", "4000000000003220", "4000000000009995", "9704198526191432198"):
        assert number in page.text


async def test_approved_card_redirects_with_a_signed_success_after_the_merchant_was_notified(
    env: Env,
) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    done = await post_form(env, action_of(page.text), intl_card("4111111111111111"))

    assert done.status_code == 302
    location = done.headers["location"]
    assert location.startswith(f"{env.merchant.base_url}/return?")
    note = parse_return(result_of(location), SECRET)
    assert note.succeeded and note.txn_ref == order.txn_ref and note.amount_vnd == order.amount_vnd
    assert note.card_type == "CREDIT" and note.bank_code == "VISA"
    # The redirect waited for the IPN: the merchant already has it.
    assert env.merchant.codes() == ["00"]
    assert env.merchant.confirmed[order.txn_ref].transaction_no == note.transaction_no
    back = await env.http.get(location)
    assert back.text == "result 00"


@pytest.mark.parametrize(
    ("card", "code"),
    [("4000000000000002", "12"), ("4000000000009995", "51"), ("4000000000000069", "99")],
    ids=["declined", "insufficient_funds", "expired_card"],
)
async def test_failing_cards_redirect_and_notify_a_signed_failure(env: Env, card: str, code: str) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    done = await post_form(env, action_of(page.text), intl_card(card))

    note = parse_return(result_of(done.headers["location"]), SECRET)
    assert (note.response_code, note.transaction_status, note.succeeded) == (code, "02", False)
    await env.merchant.wait_for(1)
    ipn = env.merchant.confirmed[order.txn_ref]
    assert (ipn.response_code, ipn.transaction_status) == (code, "02")


async def test_3ds_card_asks_for_the_otp_and_the_right_otp_approves(env: Env) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    challenge = await post_form(env, action_of(page.text), intl_card("4000000000003220"))
    assert challenge.status_code == 200
    assert "one-time password" in challenge.text
    assert env.merchant.received == []  # nothing decided before the OTP

    done = await post_form(env, action_of(challenge.text), {"otp": "123456"})
    assert done.status_code == 302
    assert parse_return(result_of(done.headers["location"]), SECRET).succeeded
    assert env.merchant.codes() == ["00"]


async def test_3ds_wrong_otp_fails_with_code_13(env: Env) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    challenge = await post_form(env, action_of(page.text), intl_card("4000000000003220"))
    done = await post_form(env, action_of(challenge.text), {"otp": "000000"})
    assert parse_return(result_of(done.headers["location"]), SECRET).response_code == "13"


async def test_reopening_the_url_during_the_challenge_returns_to_the_otp_step(env: Env) -> None:
    order = env.order()
    url = env.url(order)
    page = await open_page(env, url)
    await post_form(env, action_of(page.text), intl_card("4000000000003220"))
    again = await open_page(env, url)
    assert again.status_code == 200
    assert "one-time password" in again.text


async def test_domestic_card_pays_with_issue_date_and_bank_otp(env: Env) -> None:
    order = env.order(bank_code="VNBANK")
    page = await open_page(env, env.url(order))
    assert "name='card_issue_date'" in page.text and "name='card_cvv'" not in page.text
    form = {"card_number": "9704198526191432198", "card_holder": "NGUYEN VAN A", "card_issue_date": "07/15"}
    challenge = await post_form(env, action_of(page.text), form)
    done = await post_form(env, action_of(challenge.text), {"otp": "123456"})
    note = parse_return(result_of(done.headers["location"]), SECRET)
    assert note.succeeded
    assert (note.bank_code, note.card_type) == ("NCB", "ATM")


async def test_wrong_card_kind_is_refused_and_the_page_stays_usable(env: Env) -> None:
    order = env.order(bank_code="INTCARD")
    page = await open_page(env, env.url(order))
    domestic = {
        "card_number": "9704198526191432198",
        "card_holder": "NGUYEN VAN A",
        "card_issue_date": "07/15",
    }
    refused = await post_form(env, action_of(page.text), domestic)
    assert refused.status_code == 422
    assert "international cards only" in refused.text

    done = await post_form(env, action_of(refused.text), intl_card("4111111111111111"))
    assert done.status_code == 302


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"card_number": "4111111111111112"}, "Unknown card"),
        ({"card_number": "41111"}, "12 to 19 digits"),
        ({"card_holder": ""}, "holder"),
        ({"card_expiry": "01/20"}, "in the past"),
        ({"card_expiry": "13/30"}, "MM/YY"),
        ({"card_cvv": "12"}, "CVV"),
    ],
)
async def test_invalid_card_forms_are_re_rendered_without_echoing_the_card(
    env: Env, form: dict[str, str], message: str
) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    submitted = {**intl_card("4111111111111111"), **form}
    refused = await post_form(env, action_of(page.text), submitted)
    assert refused.status_code == 422
    assert message in refused.text
    assert submitted["card_number"] not in refused.text.replace("<code>4111111111111111</code>", "")
    assert env.merchant.received == []


async def test_cancel_redirects_with_code_24_and_notifies_the_merchant(env: Env) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    cancel_action = re.findall(r"action='([^']+/cancel)'", page.text)[0]
    done = await post_form(env, cancel_action, {})
    note = parse_return(result_of(done.headers["location"]), SECRET)
    assert (note.response_code, note.transaction_status, note.transaction_no) == ("24", "02", "0")
    assert env.merchant.codes() == ["00"]


async def test_payment_url_with_a_bad_signature_is_refused_and_records_nothing(env: Env) -> None:
    order = env.order(amount_vnd=100_000)
    tampered = env.url(order).replace("vnp_Amount=10000000", "vnp_Amount=100000")
    page = await open_page(env, tampered)
    assert page.status_code == 400
    assert "<span id='error-code'>97</span>" in page.text
    assert "<form" not in page.text
    assert (await env.http.get(f"{env.base_url}/sandbox/transactions")).json() == []
    assert env.merchant.received == []


async def test_payment_url_signed_with_another_secret_is_refused(env: Env) -> None:
    foreign = env.gateway.model_copy(update={"hash_secret": SecretStr("someone-else")})
    page = await open_page(env, build_payment_url(foreign, env.order()))
    assert page.status_code == 400 and "<span id='error-code'>97</span>" in page.text


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda url: url.replace("vnp_TmnCode=MYMOBI01", "vnp_TmnCode=OTHER001"), 400, "02"),
        (lambda url: url + "&vnp_Amount=1", 400, "03"),
        (lambda url: url.split("&vnp_SecureHash=")[0], 400, "97"),
    ],
    ids=["unknown_merchant", "repeated_parameter", "unsigned"],
)
async def test_payment_url_front_door_checks(env: Env, mutate: object, status: int, code: str) -> None:
    url = mutate(env.url(env.order()))  # type: ignore[operator]
    page = await open_page(env, url)
    assert page.status_code == status
    assert f"<span id='error-code'>{code}</span>" in page.text


async def test_expired_payment_window_is_refused_with_code_11(env: Env) -> None:
    now = datetime.now(UTC)
    order = env.order(created_at=now - timedelta(minutes=20), expires_at=now - timedelta(minutes=5))
    page = await open_page(env, env.url(order))
    assert page.status_code == 410
    assert "<span id='error-code'>11</span>" in page.text


async def test_wrong_version_is_refused_as_invalid_format(env: Env) -> None:
    gateway = env.gateway.model_copy(update={"version": "2.0.1"})
    page = await open_page(env, build_payment_url(gateway, env.order()))
    assert "<span id='error-code'>03</span>" in page.text


async def test_a_txn_ref_cannot_be_paid_twice(env: Env) -> None:
    order = env.order()
    await env.pay(order)
    again = await open_page(env, env.url(order))
    assert again.status_code == 409
    assert "<span id='error-code'>01</span>" in again.text


async def test_a_txn_ref_cannot_be_reused_with_a_different_amount_while_pending(env: Env) -> None:
    order = env.order(amount_vnd=50_000)
    await open_page(env, env.url(order))
    other = order.model_copy(update={"amount_vnd": 60_000})
    assert (await open_page(env, env.url(other))).status_code == 409


async def test_concurrent_double_submit_completes_the_payment_once(env: Env) -> None:
    order = env.order()
    page = await open_page(env, env.url(order))
    action = action_of(page.text)
    first, second = await asyncio.gather(
        post_form(env, action, intl_card("4111111111111111")),
        post_form(env, action, intl_card("4111111111111111")),
    )
    assert sorted([first.status_code, second.status_code]) == [302, 409]
    await env.settled(order.txn_ref)
    assert env.merchant.codes() == ["00"]


async def test_page_is_not_cacheable_frameable_or_leaking_referrers(env: Env) -> None:
    page = await open_page(env, env.url(env.order()))
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_card_form_must_be_urlencoded(env: Env) -> None:
    page = await open_page(env, env.url(env.order()))
    sent = await env.http.post(f"{env.base_url}{action_of(page.text)}", json=intl_card("4111111111111111"))
    assert sent.status_code == 415


async def test_unknown_session_is_a_404_page(env: Env) -> None:
    sent = await post_form(env, "/paymentv2/checkout/nope", intl_card("4111111111111111"))
    assert sent.status_code == 404
