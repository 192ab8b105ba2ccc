"""VAS and data packs through the gateway, charged by the real account service.

The article's story both ways, consent before any charge, exactly-once charges across
renewal passes (run at simulated times for one subscriber through the operators' route), the
guard's cap, the refund window, renewal notices and skips, data packs in the balances, and
isolation between subscribers."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import eventually

from .conftest import OPS_HEADERS, header_login

pytestmark = pytest.mark.e2e
VAS = os.environ.get("VAS_URL", "http://127.0.0.1:8102")
MCLIP_PRICE = 3000  # daily, provider vmusic


def provider_headers(provider: str, key: str | None = None) -> dict[str, str]:
    """A content provider's own credential (locally `local-provider-key-<provider>`)."""
    return {
        "X-Internal-Caller": f"content-provider:{provider}",
        "X-Internal-Key": key
        or os.environ.get(f"CP_KEY_{provider.upper().replace('-', '_')}")
        or f"local-provider-key-{provider}",
    }


async def main_balance(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    r = await client.get("/api/v1/me/balances", headers=auth)
    assert r.status_code == 200, r.text
    return int(r.json()["main"]["balance_vnd"])


async def balance_is(client: httpx.AsyncClient, auth: dict[str, str], amount: int) -> bool:
    return await main_balance(client, auth) == amount


async def funded(carrier: httpx.AsyncClient, msisdn: str, amount: int) -> dict[str, str]:
    """A subscriber with `amount` on the main balance, topped up as a subscriber does (a scratch
    card through the payment service): no service is played."""
    from .cards import top_up

    auth = await header_login(carrier, msisdn)
    if amount:
        await top_up(carrier, auth, amount)
        await eventually(lambda: balance_is(carrier, auth, amount))
    return auth


async def external(msisdn: str, code: str = "MCLIP", provider: str = "vmusic", **body: Any) -> httpx.Response:
    """A content provider's request, made with its own credential."""
    async with httpx.AsyncClient(base_url=VAS, trust_env=False, timeout=15) as client:
        return await client.post(
            "/internal/v1/vas/subscriptions",
            json={"msisdn": msisdn, "code": code, "channel": "partner_web",
                  "request_ref": f"click-{uuid.uuid4().hex[:16]}", **body},
            headers=provider_headers(provider),
        )  # fmt: skip


async def renewal_pass(msisdn: str, at: datetime) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=VAS, trust_env=False, timeout=30) as client:
        r = await client.post(
            "/internal/v1/vas/renewals/run",
            json={"msisdn": msisdn, "now": at.isoformat()},
            headers=OPS_HEADERS,
        )
        assert r.status_code == 200, r.text
        stats: dict[str, Any] = r.json()["stats"]
        return stats


async def subscribe(client: httpx.AsyncClient, auth: dict[str, str], code: str = "MCLIP") -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/me/vas/{code}/subscribe", headers=auth | {"Idempotency-Key": f"tap-{uuid.uuid4().hex[:12]}"}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def view(client: httpx.AsyncClient, auth: dict[str, str], sid: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/me/vas/subscriptions/{sid}", headers=auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def consents(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/me/vas/consents", headers=auth)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def actions(client: httpx.AsyncClient, auth: dict[str, str], sid: str) -> list[str]:
    return sorted(e["action"] for e in await consents(client, auth) if e.get("subscription_id") == sid)


async def vas_charges(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/me/charges", params={"limit": 50}, headers=auth)
    assert r.status_code == 200, r.text
    return [c for c in r.json()["items"] if str(c["id"]).startswith("vas:")]


async def test_guard_off_a_partner_page_click_charges_at_once_as_on_todays_networks(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 20_000)
    r = await external(subscriber)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active" and r.json()["channel"] == "partner_web"
    await eventually(lambda: balance_is(carrier, auth, 20_000 - MCLIP_PRICE))
    mine = (await carrier.get("/api/v1/me/vas", headers=auth)).json()["items"]
    assert [(s["code"], s["channel"], s["status"]) for s in mine] == [("MCLIP", "partner_web", "active")]


async def test_guard_on_a_click_charges_nothing_until_confirmed_in_the_app_then_exactly_once(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 20_000)
    r = await carrier.put("/api/v1/me/vas/guard", json={"block_external": True}, headers=auth)
    assert r.status_code == 200, r.text
    r = await external(subscriber)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    sid = r.json()["id"]
    await asyncio.sleep(1.0)  # time for a charge to land, were one asked
    assert await main_balance(carrier, auth) == 20_000
    assert await vas_charges(carrier, auth) == []
    confirms = await asyncio.gather(
        *(carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth) for _ in range(4))
    )
    assert all(c.status_code == 200 for c in confirms), [c.text for c in confirms]
    await eventually(lambda: balance_is(carrier, auth, 20_000 - MCLIP_PRICE))
    await eventually(lambda: _has(actions(carrier, auth, sid), "charged"))
    assert len(await vas_charges(carrier, auth)) == 1
    assert (await actions(carrier, auth, sid)).count("charged") == 1
    assert await main_balance(carrier, auth) == 20_000 - MCLIP_PRICE


async def _has(listing: Any, action: str) -> bool:
    return action in await listing


async def test_subscribe_confirm_charges_once_and_shows_in_my_vas_charges_and_consent_log(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 10_000)
    key = {"Idempotency-Key": f"double-tap-{subscriber}"}
    taps = await asyncio.gather(
        *(carrier.post("/api/v1/me/vas/MCLIP/subscribe", headers=auth | key) for _ in range(3))
    )
    ok = [t for t in taps if t.status_code == 201]
    assert ok and len({t.json()["id"] for t in ok}) == 1, [t.text for t in taps]
    sid = ok[0].json()["id"]
    assert ok[0].json()["status"] == "pending"
    r = await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    await eventually(lambda: balance_is(carrier, auth, 10_000 - MCLIP_PRICE))
    mine = (await carrier.get("/api/v1/me/vas", headers=auth)).json()
    assert [s["id"] for s in mine["items"]] == [sid]
    await eventually(lambda: _has(actions(carrier, auth, sid), "charged"))
    assert await actions(carrier, auth, sid) == ["activated", "charged", "requested"]
    charges = await vas_charges(carrier, auth)
    assert [(c["amount_vnd"], c["counterpart"]) for c in charges] == [(MCLIP_PRICE, "MCLIP")]


async def test_after_cancel_no_renewal_is_charged_across_simulated_periods(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 30_000)
    sid = (await subscribe(carrier, auth))["id"]
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    await eventually(lambda: balance_is(carrier, auth, 30_000 - MCLIP_PRICE))
    stats = await renewal_pass(subscriber, datetime.now(UTC) + timedelta(days=2, minutes=1))
    assert stats.get("charged") == 2  # periods 1 and 2
    await eventually(lambda: balance_is(carrier, auth, 30_000 - 3 * MCLIP_PRICE))
    r = await carrier.post("/api/v1/me/vas/MCLIP/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["cancelled"][0]["status"] == "cancelled", r.text
    for days in (3, 10, 40):
        stats = await renewal_pass(subscriber, datetime.now(UTC) + timedelta(days=days, minutes=1))
        assert not stats.get("charged"), stats
    await asyncio.sleep(0.5)
    assert await main_balance(carrier, auth) == 30_000 - 3 * MCLIP_PRICE
    assert len(await vas_charges(carrier, auth)) == 3


async def test_concurrent_confirms_and_cancels_end_cancelled_with_at_most_one_charge(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 10_000)
    sid = (await subscribe(carrier, auth))["id"]
    calls = [carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/{what}", headers=auth)
             for what in ("confirm", "cancel", "confirm", "cancel")]  # fmt: skip
    answers = await asyncio.gather(*calls)
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    assert (await view(carrier, auth, sid))["status"] == "cancelled"
    await renewal_pass(subscriber, datetime.now(UTC) + timedelta(days=5))
    await asyncio.sleep(1.0)
    assert len(await vas_charges(carrier, auth)) <= 1
    assert await main_balance(carrier, auth) in (10_000, 10_000 - MCLIP_PRICE)


async def test_insufficient_balance_suspends_the_subscription_and_says_why(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 1_000)
    sid = (await subscribe(carrier, auth))["id"]
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)

    async def suspended() -> bool:
        return (await view(carrier, auth, sid))["status"] == "suspended"

    await eventually(suspended)
    assert (await view(carrier, auth, sid))["reason"] == "charge_failed"
    failed = [e for e in await consents(carrier, auth) if e["action"] == "charge_failed"]
    assert [f["reason"] for f in failed] == ["insufficient_funds"]
    assert await main_balance(carrier, auth) == 1_000


async def test_the_monthly_cap_stops_a_renewal_that_would_exceed_it(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 20_000)
    r = await carrier.put(
        "/api/v1/me/vas/guard", json={"block_external": False, "monthly_cap_vnd": 4_000}, headers=auth
    )
    assert r.status_code == 200 and r.json()["monthly_cap_vnd"] == 4_000
    sid = (await subscribe(carrier, auth))["id"]
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    await eventually(lambda: balance_is(carrier, auth, 20_000 - MCLIP_PRICE))
    await eventually(lambda: _has(actions(carrier, auth, sid), "charged"))
    first = (await view(carrier, auth, sid))["started_at"]
    start = datetime.fromisoformat(first)
    # The next day, still in the same month when it can be: the cap holds within one month.
    stats = await renewal_pass(subscriber, start + timedelta(days=1, minutes=1))
    same_month = (start + timedelta(days=1, minutes=1)).month == start.month
    if same_month:
        assert stats.get("over_cap") == 1, stats
        assert (await view(carrier, auth, sid))["reason"] == "monthly_cap_reached"
        await asyncio.sleep(0.5)
        assert await main_balance(carrier, auth) == 20_000 - MCLIP_PRICE
    else:  # a new month: the renewal is within that month's cap
        assert stats.get("charged") == 1, stats


async def test_cancelling_a_partner_started_subscription_within_the_window_refunds_its_first_charge(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 10_000)
    sid = (await external(subscriber)).json()["id"]
    await eventually(lambda: _has(actions(carrier, auth, sid), "charged"))
    assert await main_balance(carrier, auth) == 10_000 - MCLIP_PRICE
    r = await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    await eventually(lambda: balance_is(carrier, auth, 10_000))
    assert "refunded" in await actions(carrier, auth, sid)


async def test_an_in_app_subscription_is_not_refunded_on_cancel(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 10_000)
    sid = (await subscribe(carrier, auth))["id"]
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    await eventually(lambda: _has(actions(carrier, auth, sid), "charged"))
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/cancel", headers=auth)
    await asyncio.sleep(1.0)
    assert await main_balance(carrier, auth) == 10_000 - MCLIP_PRICE
    assert "refunded" not in await actions(carrier, auth, sid)


async def test_a_skipped_renewal_after_its_notice_is_not_charged_and_the_next_one_is(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 20_000)
    sid = (await subscribe(carrier, auth))["id"]
    await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=auth)
    await eventually(lambda: balance_is(carrier, auth, 20_000 - MCLIP_PRICE))
    start = datetime.fromisoformat((await view(carrier, auth, sid))["started_at"])
    stats = await renewal_pass(subscriber, start + timedelta(hours=18))  # within the notice lead
    assert stats.get("notices") == 1 and not stats.get("charged"), stats
    assert "renewal_notice" in await actions(carrier, auth, sid)
    r = await carrier.post(f"/api/v1/me/vas/subscriptions/{sid}/skip", headers=auth)
    assert r.status_code == 200, r.text
    stats = await renewal_pass(subscriber, start + timedelta(days=1, minutes=1))
    assert not stats.get("charged"), stats
    stats = await renewal_pass(subscriber, start + timedelta(days=2, minutes=1))
    assert stats.get("charged") == 1, stats
    await eventually(lambda: balance_is(carrier, auth, 20_000 - 2 * MCLIP_PRICE))

    async def both_charges_logged() -> list[dict[str, Any]]:
        # The account's answer reaches the balance before the VAS consumer logs it: wait for it.
        log = await consents(carrier, auth)
        return log if sum(e["action"] == "charged" for e in log) == 2 else []

    log = await eventually(both_charges_logged)
    assert [e["period"] for e in log if e["action"] == "renewal_skipped"] == [1]
    assert sorted(e["period"] for e in log if e["action"] == "charged") == [0, 2]


async def test_a_bought_data_pack_is_a_bucket_in_the_balances_renews_and_stops_when_cancelled(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await funded(carrier, subscriber, 30_000)
    r = await carrier.post(
        "/api/v1/me/vas/packs/D15/buy",
        json={"auto_renew": True},
        headers=auth | {"Idempotency-Key": f"buy-{subscriber}"},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    await eventually(lambda: balance_is(carrier, auth, 20_000))

    async def buckets() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await carrier.get("/api/v1/me/balances", headers=auth)).json()["data"]
        return [b for b in items if b["id"].startswith(f"D15-{sid}-")]  # D15-<subscription>-<period>

    first = await eventually(buckets)
    assert first[0]["total_mb"] == 1536.0
    start = datetime.fromisoformat((await view(carrier, auth, sid))["started_at"])
    stats = await renewal_pass(subscriber, start + timedelta(days=1, minutes=1))
    assert stats.get("charged") == 1, stats
    await eventually(lambda: balance_is(carrier, auth, 10_000))
    r = await carrier.post("/api/v1/me/vas/D15/cancel", headers=auth)
    assert r.status_code == 200, r.text
    stats = await renewal_pass(subscriber, start + timedelta(days=4))
    assert not stats.get("charged"), stats
    await asyncio.sleep(0.5)
    assert await main_balance(carrier, auth) == 10_000
    purchases = [e for e in await consents(carrier, auth) if e["action"] == "charged"]
    assert sorted(p["period"] for p in purchases) == [0, 1]


async def test_a_subscriber_never_sees_or_touches_anothers_subscriptions(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Any
) -> None:
    from .conftest import provision

    auth = await funded(carrier, subscriber, 0)
    other = new_number()
    await provision(other)
    other_auth = await header_login(carrier, other)
    sid = (await subscribe(carrier, other_auth))["id"]
    for method, path in (
        ("GET", f"/api/v1/me/vas/subscriptions/{sid}"),
        ("POST", f"/api/v1/me/vas/subscriptions/{sid}/confirm"),
        ("POST", f"/api/v1/me/vas/subscriptions/{sid}/cancel"),
        ("POST", f"/api/v1/me/vas/subscriptions/{sid}/skip"),
    ):
        r = await carrier.request(method, path, headers=auth)
        assert r.status_code == 404, (path, r.text)
    assert (await carrier.get("/api/v1/me/vas?all=true", headers=auth)).json()["items"] == []
    assert await consents(carrier, auth) == []
    assert (await view(carrier, other_auth, sid))["status"] == "pending"


async def test_bad_requests_answer_4xx_with_a_message(carrier: httpx.AsyncClient, subscriber: str) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.post(
        "/api/v1/me/vas/NOPE/subscribe", headers=auth | {"Idempotency-Key": "bad-request-1"}
    )
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await carrier.post("/api/v1/me/vas/MCLIP/subscribe", headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "idempotency_key_required"
    r = await carrier.put("/api/v1/me/vas/guard", json={"block_external": "maybe"}, headers=auth)
    assert r.status_code == 422 and "block_external" in r.json()["message"]
    r = await carrier.post("/api/v1/me/vas/subscriptions/sub-AAAAAAAAAAAAAAAA/confirm", headers=auth)
    assert r.status_code == 404
    r = await carrier.get("/api/v1/me/vas")
    assert r.status_code == 401
    r = await external(subscriber, provider="someone-else")
    assert r.status_code == 422 and r.json()["error"] == "not_your_service"


async def test_a_plan_changes_within_its_billing_and_a_prepaid_pack_is_refused_to_postpaid(
    carrier: httpx.AsyncClient, subscriber: str, new_number: Any
) -> None:
    from .conftest import provision

    auth = await header_login(carrier, subscriber)
    r = await carrier.post("/api/v1/me/plan", json={"plan_code": "Q263"}, headers=auth)
    assert r.status_code == 200 and r.json()["billing"] == "prepaid", r.text
    r = await carrier.post("/api/v1/me/plan", json={"plan_code": "MOBIGOLD"}, headers=auth)
    assert r.status_code == 409 and r.json()["error"] == "not_allowed", r.text
    r = await carrier.post("/api/v1/me/plan", json={"plan_code": "NOSUCH"}, headers=auth)
    assert r.status_code == 404
    assert "plan_changed" in [e["action"] for e in await consents(carrier, auth)]
    postpaid = new_number()
    await provision(postpaid, plan="postpaid")
    post_auth = await header_login(carrier, postpaid)
    r = await carrier.post(
        "/api/v1/me/vas/packs/MAX70/buy", headers=post_auth | {"Idempotency-Key": f"buy-max-{postpaid}"}
    )
    assert r.status_code == 409 and r.json()["error"] == "not_eligible", r.text


async def test_the_service_documents_every_channel_it_consumes_and_produces() -> None:
    from mobi_contracts.topics import VAS_EVENTS, VAS_GROUP

    async with httpx.AsyncClient(base_url=VAS, trust_env=False) as client:
        spec = (await client.get("/asyncapi.json")).json()
    expected = {f"{VAS_EVENTS.name}:{e.EVENT_TYPE}" for e in VAS_EVENTS.events} | {
        f"{t.name}:{e.EVENT_TYPE}:consume"
        for t in VAS_GROUP.topics
        for e in VAS_GROUP.handles
        if e in t.events
    }
    assert expected <= set(spec["channels"])
    schemas = spec["components"]["schemas"]
    titles = {schema.get("title") for schema in schemas.values()}
    assert {"VasChargeRequested", "VasCharged", "BalanceChangeRejected", "PointsRedeemed"} <= titles


async def test_a_provider_cannot_subscribe_a_number_that_is_not_ours(new_number: Any) -> None:
    r = await external(new_number())  # never provisioned
    assert r.status_code == 422 and r.json()["error"] == "not_a_subscriber", r.text


async def test_a_voice_pack_gives_its_minutes_in_the_balances_and_calls_drain_them(
    carrier: httpx.AsyncClient, subscriber: str, ocs: EventPublisher
) -> None:
    """V50 ("500 on-net minutes", 50 000 đ) used to take the money and grant nothing."""
    from mobi_contracts.events.network import UsageRecorded, UsageRecordedData
    from mobi_contracts.topics import NETWORK_USAGE

    from .cards import top_up

    auth = await header_login(carrier, subscriber)
    await top_up(carrier, auth, 100_000)
    await eventually(lambda: balance_is(carrier, auth, 100_000))
    r = await carrier.post(
        "/api/v1/me/vas/packs/V50/buy", headers=auth | {"Idempotency-Key": f"v50-{subscriber}"}
    )
    assert r.status_code == 201, r.text

    async def minutes() -> list[dict[str, Any]]:
        voice: list[dict[str, Any]] = (await carrier.get("/api/v1/me/balances", headers=auth)).json()["voice"]
        return voice

    (granted,) = await eventually(minutes)
    assert (granted["remaining_minutes"], granted["total_minutes"]) == (500.0, 500.0)
    assert await main_balance(carrier, auth) == 50_000
    call = UsageRecorded.new(
        subject=subscriber,
        producer="ocs-mediation",  # the network's charging system, outside our services
        correlation_id=f"cdr-{subscriber}",
        data=UsageRecordedData(
            usage_id=f"CDR-v50-{subscriber}",
            kind="voice",
            quantity=600,
            unit="seconds",
            charge_vnd=0,
            started_at=datetime.now(UTC),
        ),
    )
    await ocs.publish(NETWORK_USAGE.name, [call, call])

    async def drained() -> bool:
        return [m["remaining_minutes"] for m in await minutes()] == [490.0]

    await eventually(drained)
    assert await main_balance(carrier, auth) == 50_000


async def test_a_catalogue_import_that_drops_a_vas_a_loyalty_reward_grants_is_refused() -> None:
    async with httpx.AsyncClient(base_url=VAS, trust_env=False, timeout=15) as client:
        items = (await client.get("/api/v1/vas/catalog")).json()["items"]
        packs = (await client.get("/api/v1/vas/packs")).json()["items"]
        vas = [{k: v for k, v in i.items() if k != "period_days"} for i in items if i["code"] != "FUNRING"]
        r = await client.put(
            "/internal/v1/vas/catalog", json={"vas": vas, "packs": packs}, headers=OPS_HEADERS
        )
    assert (r.status_code, r.json()["error"]) == (422, "reward_without_service"), r.text
    assert "VAS-FUNRING-30D" in r.json()["message"]
