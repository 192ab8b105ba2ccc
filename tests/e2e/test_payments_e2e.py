"""Card and scratch-card top-ups and bill payments, through the gateway and the provider
sandbox, as the app and the provider would drive them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from servicekit.testing import eventually

from .cards import mint_card
from .conftest import OPS_HEADERS, header_login, provision
from .payments import (
    APPROVED_MASTERCARD,
    APPROVED_NCB,
    APPROVED_VISA,
    DECLINED_VISA,
    NO_FUNDS_VISA,
    VISA_3DS,
    notifications,
    pay,
    payment,
    start_topup,
    switch,
)

pytestmark = pytest.mark.e2e


async def balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    return int((await client.get("/api/v1/me/balances", headers=auth)).json()["main"]["balance_vnd"])


async def settled(client: httpx.AsyncClient, auth: dict[str, str], payment_id: str) -> str | None:
    status = (await payment(client, auth, payment_id))["status"]
    return status if status != "pending" else None


async def test_an_approved_card_topup_credits_once_and_shows_in_the_history(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    started = await start_topup(carrier, auth, 100_000)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "pending" and body["payment_url"].startswith("http://127.0.0.1:8192/paymentv2/")
    result = await pay(body["payment_url"], APPROVED_VISA)
    assert result["response_code"] == "00"
    assert await eventually(lambda: settled(carrier, auth, body["payment_id"])) == "succeeded"
    await eventually(lambda: _balance_is(carrier, auth, 100_000))
    history = (await carrier.get("/api/v1/me/topups", headers=auth)).json()["items"]
    assert [(h["id"], h["amount_vnd"], h["method"]) for h in history] == [
        (body["payment_id"], 100_000, "card_international")
    ]
    answers = [n["merchant_answer"]["RspCode"] for n in await notifications(body["payment_id"])]
    assert answers == ["00"]


async def test_a_declined_card_credits_nothing(carrier: httpx.AsyncClient, subscriber: str) -> None:
    auth = await header_login(carrier, subscriber)
    for card in (DECLINED_VISA, NO_FUNDS_VISA):
        body = (await start_topup(carrier, auth, 50_000)).json()
        await pay(body["payment_url"], card)
        assert await eventually(lambda b=body: settled(carrier, auth, b["payment_id"])) == "failed"
        shown = await payment(carrier, auth, body["payment_id"])
        assert shown["reason_code"] in ("12", "51") and shown["reason"]
    assert await balance(carrier, auth) == 0
    assert (await carrier.get("/api/v1/me/topups", headers=auth)).json()["items"] == []


async def test_three_d_secure_and_domestic_cards_go_through_the_otp_step(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    visa = (await start_topup(carrier, auth, 20_000)).json()
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8192", trust_env=False) as provider:
        challenged = await provider.post(
            "/sandbox/pay", json={"payment_url": visa["payment_url"], "card": VISA_3DS}
        )
        assert challenged.status_code == 409 and challenged.json()["detail"]["error"] == "otp_required"
    await pay(visa["payment_url"], VISA_3DS, otp="123456")
    atm = (await start_topup(carrier, auth, 30_000, method="domestic")).json()
    await pay(atm["payment_url"], APPROVED_NCB, otp="123456")
    await eventually(lambda: _balance_is(carrier, auth, 50_000))


async def test_duplicate_notifications_delivered_concurrently_credit_once(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 40_000)).json()
    await switch(body["payment_id"], copies=8, concurrent=True)
    await pay(body["payment_url"], APPROVED_MASTERCARD)
    await eventually(lambda: _balance_is(carrier, auth, 40_000))
    answers = await eventually(lambda: _answers(body["payment_id"], 8))
    assert sorted(answers) == ["00"] + ["02"] * 7
    await asyncio.sleep(1.0)
    assert await balance(carrier, auth) == 40_000
    assert len((await carrier.get("/api/v1/me/topups", headers=auth)).json()["items"]) == 1


@pytest.mark.parametrize(
    ("plan", "refused_with"),
    [
        ({"tamper": "signature"}, "97"),
        ({"tamper": "amount"}, "04"),
        ({"stale_age_s": 3600}, "97"),  # a stale stamp fails authentication like a bad hash
    ],
)
async def test_forged_wrong_amount_and_stale_notifications_are_refused_and_change_nothing(
    carrier: httpx.AsyncClient, subscriber: str, plan: dict[str, object], refused_with: str
) -> None:
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 60_000)).json()
    await switch(body["payment_id"], then_genuine=False, **plan)
    await pay(body["payment_url"], APPROVED_VISA)
    answers = await eventually(lambda: _answers(body["payment_id"], 1))
    assert answers[0] == refused_with
    await asyncio.sleep(0.5)
    assert (await payment(carrier, auth, body["payment_id"]))["status"] == "pending"
    assert await balance(carrier, auth) == 0


async def test_a_failure_notification_after_the_success_changes_nothing(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 70_000)).json()
    await switch(body["payment_id"], out_of_order="failure_after_success")
    await pay(body["payment_url"], APPROVED_VISA)
    answers = await eventually(lambda: _answers(body["payment_id"], 2))
    assert answers == ["00", "02"]
    assert (await payment(carrier, auth, body["payment_id"]))["status"] == "succeeded"
    await eventually(lambda: _balance_is(carrier, auth, 70_000))


async def test_a_late_notification_still_credits_once(carrier: httpx.AsyncClient, subscriber: str) -> None:
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 15_000)).json()
    await switch(body["payment_id"], delay_s=2.0)
    await pay(body["payment_url"], APPROVED_VISA)
    assert (await payment(carrier, auth, body["payment_id"]))["status"] == "pending"
    await eventually(lambda: _balance_is(carrier, auth, 15_000))


async def test_an_idempotency_key_retry_returns_the_same_payment_and_a_changed_body_is_refused(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    key = f"retry-{uuid.uuid4().hex}"
    first = await start_topup(carrier, auth, 25_000, key=key)
    again = await start_topup(carrier, auth, 25_000, key=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    changed = await start_topup(carrier, auth, 26_000, key=key)
    assert changed.status_code == 422 and changed.json()["error"] == "idempotency_key_reused"
    concurrent = await asyncio.gather(*(start_topup(carrier, auth, 35_000, key=f"{key}-c") for _ in range(5)))
    ids = {r.json().get("payment_id") for r in concurrent if r.status_code == 201}
    assert len(ids) == 1 and {r.status_code for r in concurrent} <= {201, 409}
    missing = await carrier.post(
        "/api/v1/me/topups/card", json={"amount_vnd": 25_000, "method": "domestic"}, headers=auth
    )
    assert missing.status_code == 400 and missing.json()["error"] == "idempotency_key_required"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"amount_vnd": 5_000, "method": "domestic"}, "at least 10,000"),
        ({"amount_vnd": 10_000_000, "method": "domestic"}, "at most 5,000,000"),
        ({"amount_vnd": 10_500, "method": "domestic"}, "multiple of 1,000"),
        ({"amount_vnd": "100000", "method": "domestic"}, "amount_vnd"),
        ({"amount_vnd": 100_000, "method": "paypal"}, "method"),
        (
            {"amount_vnd": 100_000, "method": "domestic", "target_msisdn": "0981234567"},
            "not an active MobiFone subscription",
        ),
    ],
)
async def test_amount_and_method_rules_answer_422_with_a_message(
    carrier: httpx.AsyncClient, subscriber: str, body: dict[str, object], error: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.post(
        "/api/v1/me/topups/card", json=body, headers=auth | {"Idempotency-Key": uuid.uuid4().hex}
    )
    assert r.status_code == 422, r.text
    assert error in r.json()["message"]


async def test_a_topup_for_another_number_credits_that_number(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Callable[[], str]
) -> None:
    other = new_number()
    await provision(other)
    auth, other_auth = await header_login(carrier, subscriber), await header_login(carrier, other)
    body = (await start_topup(carrier, auth, 80_000, target="0" + other[2:])).json()
    assert body["target_msisdn"] == other
    await pay(body["payment_url"], APPROVED_VISA)
    await eventually(lambda: _balance_is(carrier, other_auth, 80_000))
    assert await balance(carrier, auth) == 0
    history = (await carrier.get("/api/v1/me/topups", headers=other_auth)).json()["items"]
    assert history[0]["payer_msisdn"] == subscriber


async def test_a_topup_for_a_ported_in_number_is_accepted_and_for_a_ported_out_one_refused(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Callable[[], str]
) -> None:
    ported_in, ported_out = "8498" + new_number()[4:], new_number()
    await provision(ported_in)  # another network's prefix, now a MobiFone subscription
    await provision(ported_out, status="ported_out")  # our prefix, now another operator's
    auth = await header_login(carrier, subscriber)
    accepted = await start_topup(carrier, auth, 50_000, target=ported_in)
    assert accepted.status_code == 201 and accepted.json()["target_msisdn"] == ported_in
    refused = await start_topup(carrier, auth, 50_000, target=ported_out)
    assert (refused.status_code, refused.json()["error"]) == (422, "not_a_subscriber"), refused.text


async def test_only_the_payer_sees_a_payment(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Callable[[], str]
) -> None:
    other = new_number()
    await provision(other)
    auth = await header_login(carrier, subscriber)
    body = (await start_topup(carrier, auth, 10_000)).json()
    r = await carrier.get(
        f"/api/v1/me/payments/{body['payment_id']}", headers=await header_login(carrier, other)
    )
    assert r.status_code == 404


async def test_a_bill_is_paid_by_card_and_shows_paid(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    bill_id, auth = await _postpaid_with_bill(carrier, new_number(), "B-E2E", 245_000)
    r = await _pay_bill(carrier, auth, bill_id)
    assert r.status_code == 201, r.text
    assert r.json()["amount_vnd"] == 245_000
    await pay(r.json()["payment_url"], APPROVED_NCB)
    await eventually(lambda: _bill_status(carrier, auth, bill_id, "paid"))
    again = await _pay_bill(carrier, auth, bill_id)
    assert again.status_code == 409
    stranger = await header_login(carrier, "84901234567")
    r = await _pay_bill(carrier, stranger, bill_id)
    assert r.status_code == 404


async def test_a_bill_has_one_open_payment_whatever_the_idempotency_key(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    bill_id, auth = await _postpaid_with_bill(carrier, new_number(), "B-ONCE", 120_000)
    first_key = uuid.uuid4().hex

    async def start(key: str) -> httpx.Response:
        return await _pay_bill(carrier, auth, bill_id, key)

    answers = await asyncio.gather(start(first_key), *(start(uuid.uuid4().hex) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 4
    opened = next(a for a in answers if a.status_code == 201).json()
    refused = next(a for a in answers if a.status_code == 409).json()
    assert (refused["error"], refused["payment_id"]) == ("bill_payment_in_progress", opened["payment_id"])
    if answers[0].status_code == 201:  # the same key again is the same payment
        assert (await start(first_key)).json()["payment_id"] == opened["payment_id"]
    await pay(opened["payment_url"], APPROVED_NCB)
    await eventually(lambda: _bill_status(carrier, auth, bill_id, "paid"))
    assert (await start(uuid.uuid4().hex)).json()["error"] == "bill_already_paid"


async def test_a_scratch_card_used_twice_at_once_credits_once(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Callable[[], str]
) -> None:
    other = new_number()
    await provision(other)
    serial, pin = await mint_card(50_000)
    auth, other_auth = await header_login(carrier, subscriber), await header_login(carrier, other)
    tries = [
        carrier.post("/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": pin}, headers=a)
        for a in (auth, other_auth) * 4
    ]
    results = await asyncio.gather(*tries)
    won = [r for r in results if r.status_code == 201]
    # One subscriber's tries win, all of them the same top-up (a retry is answered as the first
    # was); every try of the other is refused.
    assert len({r.json()["topup_id"] for r in won}) == 1 and len(won) == 4, [r.text for r in results]
    assert [r.json()["error"] for r in results if r.status_code != 201] == ["card_not_usable"] * 4

    async def total() -> int:
        return await balance(carrier, auth) + await balance(carrier, other_auth)

    await eventually(lambda: _equals(total(), 50_000))
    await asyncio.sleep(1.0)
    assert await total() == 50_000


async def test_a_scratch_card_retried_after_a_lost_answer_is_answered_as_before_and_credits_once(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    """The app retries when the answer is lost (a timeout, a 504): the retry must not tell the
    subscriber their card is used up when it was used by that very request (found by the VAS
    model test's soak)."""
    serial, pin = await mint_card(20_000)
    auth = await header_login(carrier, subscriber)
    card = {"serial": serial, "pin": pin}
    first = await carrier.post("/api/v1/me/topups/scratch-card", json=card, headers=auth)
    retry = await carrier.post("/api/v1/me/topups/scratch-card", json=card, headers=auth)
    assert first.status_code == 201 and retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    await eventually(lambda: _equals(balance(carrier, auth), 20_000))
    await asyncio.sleep(1.0)
    assert await balance(carrier, auth) == 20_000


async def test_wrong_scratch_card_pins_lock_the_subscriber_out(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    serial, pin = await mint_card(10_000)
    auth = await header_login(carrier, subscriber)
    wrong = f"{(int(pin) + 1) % 10**13:013d}"
    codes = [
        (
            await carrier.post(
                "/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": wrong}, headers=auth
            )
        ).status_code
        for _ in range(5)
    ]
    assert codes == [422] * 5
    r = await carrier.post(
        "/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": pin}, headers=auth
    )
    assert r.status_code == 429


async def _balance_is(client: httpx.AsyncClient, auth: dict[str, str], expected: int) -> bool:
    return await balance(client, auth) == expected


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _answers(txn_ref: str, count: int) -> list[str] | None:
    answers = [n["merchant_answer"]["RspCode"] for n in await notifications(txn_ref) if n["merchant_answer"]]
    return answers if len(answers) >= count else None


async def _bill_status(client: httpx.AsyncClient, auth: dict[str, str], bill_id: str, status: str) -> bool:
    bills = (await client.get("/api/v1/me/bills", headers=auth)).json()["items"]
    return any(b["id"] == bill_id and b["status"] == status for b in bills)


async def _postpaid_with_bill(
    carrier: httpx.AsyncClient, msisdn: str, prefix: str, amount: int
) -> tuple[str, dict[str, str]]:
    """A new postpaid subscriber with one unpaid bill: (its bill id, its auth headers)."""
    await provision(msisdn, plan="postpaid")
    bill_id = f"{prefix}-{msisdn}"
    await _issue_bill(msisdn, bill_id, amount)
    return bill_id, await header_login(carrier, msisdn)


async def _pay_bill(
    carrier: httpx.AsyncClient, auth: dict[str, str], bill_id: str, key: str | None = None
) -> httpx.Response:
    """Starts a domestic-card payment of the bill (a fresh Idempotency-Key unless given)."""
    return await carrier.post(
        f"/api/v1/me/bills/{bill_id}/pay",
        json={"method": "domestic"},
        headers=auth | {"Idempotency-Key": key or uuid.uuid4().hex},
    )


async def _issue_bill(msisdn: str, bill_id: str, amount: int) -> None:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8101", trust_env=False) as account:
        r = await account.put(
            f"/internal/v1/bills/{bill_id}",
            json={"msisdn": msisdn, "period": "2026-10", "amount_vnd": amount, "due_date": "2026-11-30"},
            headers=OPS_HEADERS,
        )
        assert r.status_code == 204, r.text


async def test_twenty_parallel_wrong_pins_get_only_the_allowed_tries(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    serial, pin = await mint_card(10_000)
    auth = await header_login(carrier, subscriber)
    guesses = [
        carrier.post(
            "/api/v1/me/topups/scratch-card",
            json={"serial": serial, "pin": f"{(int(pin) + i) % 10**13:013d}"},
            headers=auth,
        )
        for i in range(1, 21)
    ]
    statuses = sorted(r.status_code for r in await asyncio.gather(*guesses))
    assert statuses.count(422) <= 5 and set(statuses) <= {422, 429}, statuses


async def test_a_card_guessed_at_by_many_subscribers_is_locked_for_everyone(
    carrier: httpx.AsyncClient, new_number: Callable[[], str]
) -> None:
    serial, pin = await mint_card(10_000)
    wrong = f"{(int(pin) + 1) % 10**13:013d}"
    guessers = []
    for _ in range(3):
        number = new_number()
        await provision(number)
        guessers.append(await header_login(carrier, number))
    for auth in guessers:
        for _ in range(4):  # under each subscriber's own limit of 5
            await carrier.post(
                "/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": wrong}, headers=auth
            )
    owner = new_number()
    await provision(owner)
    r = await carrier.post(
        "/api/v1/me/topups/scratch-card",
        json={"serial": serial, "pin": pin},
        headers=await header_login(carrier, owner),
    )
    assert (r.status_code, r.json()["error"]) == (429, "locked_out"), (
        "12 wrong PINs for one card lock the card"
    )


async def test_the_return_page_forbids_scripts_frames_and_forms(wifi: httpx.AsyncClient) -> None:
    r = await wifi.get("/api/v1/payments/provider/return?vnp_TxnRef=<script>alert(1)</script>")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in r.text
