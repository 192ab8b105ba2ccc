"""The rules: a subscription's status from its records, the guard, the cap, charge claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mobi_contracts.topics import VAS_EVENTS
from vas_service.charging import charge_claim
from vas_service.domain.catalog import DEMO_PACKS, DEMO_VAS, Pack, item_document, parse_item
from vas_service.domain.subscriptions import (
    derive,
    may_start_outside_app,
    period_bounds,
    refund_due,
    subscription_id_for,
    within_cap,
)

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def sub(**extra: Any) -> dict[str, Any]:
    return {
        "_id": "sub-X",
        "confirm_by": NOW + timedelta(minutes=15),
        "auto_renew": True,
        "channel": "app",
        **extra,
    }


def claim(period: int, state: str = "requested", month: str = "202611") -> dict[str, Any]:
    start, end = period_bounds(NOW, 1, period)
    return {
        "_id": f"sub-X:{period}",
        "period": period,
        "state": state,
        "amount_vnd": 3000,
        "month": month,
        "period_start": start,
        "period_end": end,
    }


def entry(action: str, period: int | None = None, **extra: Any) -> dict[str, Any]:
    cid = f"sub-X:{period}" if period is not None else None
    return {"action": action, "charge_id": cid, "at": NOW, **extra}


def test_a_request_waits_for_consent_then_expires_unconfirmed() -> None:
    assert derive(sub(), [entry("requested")], [], None, NOW).status == "pending"
    assert derive(sub(), [entry("requested")], [], None, NOW + timedelta(minutes=16)).status == "expired"


def test_a_paid_subscription_is_active_with_its_next_renewal_and_this_months_cost() -> None:
    nxt = {"due_at": NOW + timedelta(days=1)}
    view = derive(sub(), [entry("activated"), entry("charged", 0)], [claim(0)], nxt, NOW)
    assert (view.status, view.next_renewal_at, view.spent_this_month_vnd) == ("active", nxt["due_at"], 3000)


def test_a_refused_charge_suspends_and_a_cap_refusal_says_so() -> None:
    failed = derive(sub(), [entry("activated"), entry("charge_failed", 0)], [claim(0)], None, NOW)
    assert (failed.status, failed.reason, failed.spent_this_month_vnd) == ("suspended", "charge_failed", 0)
    capped = derive(
        sub(), [entry("activated"), entry("charged", 0)], [claim(0), claim(1, "cap_reached")], None, NOW
    )
    assert (capped.status, capped.reason) == ("suspended", "monthly_cap_reached")


def test_a_later_paid_period_lifts_the_suspension() -> None:
    records = [entry("activated"), entry("charge_failed", 0), entry("charged", 1)]
    assert derive(sub(), records, [claim(0), claim(1)], None, NOW).status == "active"


def test_a_cancellation_wins_over_everything() -> None:
    records = [entry("activated"), entry("charged", 0), entry("cancelled", reason="subscriber")]
    assert derive(sub(), records, [claim(0)], {"due_at": NOW}, NOW).status == "cancelled"


def test_a_period_that_does_not_renew_ends() -> None:
    view = derive(
        sub(auto_renew=False), [entry("activated")], [claim(0, "free")], None, NOW + timedelta(days=2)
    )
    assert view.status == "ended"


def test_the_guard_lets_only_allow_listed_providers_start_outside_the_app() -> None:
    assert may_start_outside_app(None, "vmusic")
    assert may_start_outside_app({"block_external": False}, "vmusic")
    assert not may_start_outside_app({"block_external": True, "allowed_providers": []}, "vmusic")
    assert may_start_outside_app({"block_external": True, "allowed_providers": ["vmusic"]}, "vmusic")


def test_the_cap_allows_up_to_it_and_no_more() -> None:
    assert within_cap(None, 1_000_000, 3000)
    assert within_cap({"monthly_cap_vnd": 6000}, 3000, 3000)
    assert not within_cap({"monthly_cap_vnd": 6000}, 3001, 3000)


def test_only_outside_starts_cancelled_within_the_window_are_refunded() -> None:
    window = timedelta(hours=48)
    assert refund_due({"channel": "partner_web"}, NOW, NOW + timedelta(hours=47), window)
    assert not refund_due({"channel": "partner_web"}, NOW, NOW + timedelta(hours=49), window)
    assert not refund_due({"channel": "app"}, NOW, NOW + timedelta(hours=1), window)


def test_a_retried_request_names_the_same_subscription() -> None:
    assert subscription_id_for("app", "84901234567", "k1") == subscription_id_for("app", "84901234567", "k1")
    assert subscription_id_for("app", "84901234567", "k1") != subscription_id_for("app", "84901234567", "k2")


def template(item: Any) -> dict[str, Any]:
    return {
        "subscription_id": "sub-X",
        "msisdn": "84901234567",
        "code": item.code,
        "name": item.name_vi,
        "item_kind": item.item_kind,
        "price_vnd": item.price_vnd,
        "period_days": item.period_days,
        "quota_kb": getattr(item, "quota_kb", None),
        "started_at": NOW,
    }


def test_a_data_pack_charge_carries_its_bucket_and_a_vas_charge_none() -> None:
    d15 = next(p for p in DEMO_PACKS if p.code == "D15")
    pack = charge_claim(template(d15), 1, NOW, "c", VAS_EVENTS)
    assert (pack["_id"], pack["kind"], pack["bucket"]["quota_kb"]) == (
        "sub-X:1",
        "data_pack_renewal",
        d15.quota_kb,
    )
    assert pack["period_start"] == NOW + timedelta(days=1)
    vas = charge_claim(template(DEMO_VAS[0]), 0, NOW, "c", VAS_EVENTS)
    assert (vas["kind"], vas["bucket"]) == ("vas_first", None)
    assert vas["event_id"] == charge_claim(template(DEMO_VAS[0]), 0, NOW, "other", VAS_EVENTS)["event_id"]


def test_a_voice_pack_is_charged_as_money_only() -> None:
    v50 = next(p for p in DEMO_PACKS if p.code == "V50")
    assert charge_claim(template(v50), 0, NOW, "c", VAS_EVENTS)["bucket"] is None


def test_catalogue_items_round_trip_and_a_pack_needs_a_quota() -> None:
    for item in (*DEMO_VAS, *DEMO_PACKS):
        assert parse_item(item_document(item)) == item
    with pytest.raises(ValidationError):
        Pack(
            code="X1",
            name_vi="x",
            name_en="x",
            price_vnd=1000,
            pack_kind="data",
            validity_days=1,
            auto_renew=False,
            eligible=("prepaid",),
        )
