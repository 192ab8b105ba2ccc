"""The rules: a subscription's status from its records, the chain, the guard, the cap, the
calendar, charge claims and what packs grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from servicekit.vntime import month_of, wall_date
from vas_service.domain.catalog import DEMO_PACKS, DEMO_VAS, Pack, item_document, parse_item
from vas_service.domain.slots import schedule_entry, slot_claim, template
from vas_service.domain.subscriptions import (
    Records,
    derive,
    may_skip,
    may_start_outside_app,
    next_origin,
    next_period,
    period_bounds,
    refund_due,
    subscription_id_for,
    within_cap,
)

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ACTIVATED = {"action": "activated", "at": NOW, "origin": NOW}


def sub(**extra: Any) -> dict[str, Any]:
    return {
        "_id": "sub-X",
        "msisdn": "84901234567",
        "code": "MCLIP",
        "name": "MClip",
        "item_kind": "vas",
        "price_vnd": 3000,
        "period_days": 1,
        "confirm_by": NOW + timedelta(minutes=15),
        "auto_renew": True,
        "channel": "app",
        **extra,
    }


def slot(period: int, state: str = "requested", **extra: Any) -> dict[str, Any]:
    return {**slot_claim(template(sub(), NOW), period, NOW, "c", state), **extra}  # type: ignore[arg-type]


def entry(period: int) -> dict[str, Any]:
    return schedule_entry(template(sub(), NOW), period, timedelta(hours=24))


def view(now: datetime = NOW, **records: Any) -> Any:
    slots = records.pop("slots", [])
    return derive(
        Records(sub=records.pop("sub", sub()), slots=sorted(slots, key=lambda s: -s["period"]), **records),
        now,
    )


def test_a_request_waits_for_consent_then_expires_unconfirmed() -> None:
    assert view().status == "pending"
    assert view(NOW + timedelta(minutes=16)).status == "expired"


def test_a_paid_subscription_is_active_with_its_next_renewal_and_this_months_cost() -> None:
    paid = slot(0)
    v = view(
        activated=ACTIVATED,
        slots=[paid],
        month_slots=[paid],
        outcomes={"sub-X:0": "charged"},
        next_entry=entry(1),
    )
    assert (v.status, v.next_renewal_at, v.spent_this_month_vnd, v.auto_renew) == (
        "active",
        NOW + timedelta(days=1),
        3000,
        True,
    )


def test_a_refused_charge_suspends_and_a_cap_refusal_says_so() -> None:
    failed = view(activated=ACTIVATED, slots=[slot(0)], outcomes={"sub-X:0": "failed"}, next_entry=entry(1))
    assert (failed.status, failed.reason, failed.spent_this_month_vnd) == ("suspended", "charge_failed", 0)
    capped = view(activated=ACTIVATED, slots=[slot(0), slot(1, "cap_reached")], next_entry=entry(2))
    assert (capped.status, capped.reason) == ("suspended", "monthly_cap_reached")


def test_a_later_paid_period_lifts_the_suspension() -> None:
    outcomes = {"sub-X:0": "failed", "sub-X:1": "charged"}
    assert view(activated=ACTIVATED, slots=[slot(0), slot(1)], outcomes=outcomes).status == "active"


def test_a_cancellation_wins_over_everything() -> None:
    cancelled = {"action": "cancelled", "at": NOW, "reason": "subscriber"}
    v = view(activated=ACTIVATED, cancelled=cancelled, slots=[slot(0)], next_entry=entry(1))
    assert (v.status, v.next_renewal_at) == ("cancelled", None)


def test_a_stopper_being_written_already_shows_cancelled() -> None:
    assert view(activated=ACTIVATED, slots=[slot(0), slot(1, "cancelled")]).status == "cancelled"


def test_a_period_that_does_not_renew_ends() -> None:
    gift = view(
        NOW + timedelta(days=2), sub=sub(auto_renew=False), activated=ACTIVATED, slots=[slot(0, "free")]
    )
    assert gift.status == "ended"


def test_auto_renew_off_runs_to_the_end_of_the_period_then_ends() -> None:
    chain = [slot(0), slot(1, "renewal_off")]
    running = view(activated=ACTIVATED, slots=chain, outcomes={"sub-X:0": "charged"})
    assert (running.status, running.auto_renew, running.next_renewal_at) == ("active", False, None)
    assert view(NOW + timedelta(days=1), activated=ACTIVATED, slots=chain).status == "ended"


def test_turned_on_again_the_slot_after_the_stopper_takes_the_window_the_stopper_left() -> None:
    off = slot(1, "renewal_off")
    origin = next_origin(off, NOW, 1)
    after = slot_claim(template(sub(), origin), 2, NOW, "c")
    assert (after["period_start"], after["period_end"]) == (off["period_start"], off["period_end"])
    assert next_origin(slot(1), NOW, 1) == NOW  # after a paid slot the windows follow on
    again = schedule_entry(template(sub(), origin), 2, timedelta(hours=24))
    v = view(activated=ACTIVATED, slots=[slot(0), off], next_entry=again)
    assert (v.auto_renew, v.next_renewal_at) == (True, NOW + timedelta(days=1))


def test_the_first_free_slot_follows_the_newest_decided_one() -> None:
    assert next_period([]) == 0
    assert next_period([slot(0), slot(3, "skipped"), slot(1)]) == 4


def test_only_the_coming_renewal_can_be_skipped_after_its_notice() -> None:
    weekly = schedule_entry(template(sub(period_days=7), NOW), 1, timedelta(hours=24))
    assert not may_skip(weekly, NOW + timedelta(days=5), timedelta(hours=24))
    assert may_skip(weekly, NOW + timedelta(days=6, hours=1), timedelta(hours=24))
    assert not may_skip(weekly, NOW + timedelta(days=7), timedelta(hours=24))


def test_the_guard_lets_only_allow_listed_providers_start_outside_the_app() -> None:
    assert may_start_outside_app(None, "vmusic")
    assert may_start_outside_app({"block_external": False}, "vmusic")
    assert not may_start_outside_app({"block_external": True, "allowed_providers": []}, "vmusic")
    assert may_start_outside_app({"block_external": True, "allowed_providers": ["vmusic"]}, "vmusic")


def test_the_cap_allows_up_to_it_and_no_more() -> None:
    assert within_cap(None, 1_000_000, 3000)
    assert within_cap(6000, 3000, 3000)
    assert not within_cap(6000, 3001, 3000)


def test_only_outside_starts_cancelled_within_the_window_are_refunded() -> None:
    window = timedelta(hours=48)
    assert refund_due({"channel": "partner_web"}, NOW, NOW + timedelta(hours=47), window)
    assert not refund_due({"channel": "partner_web"}, NOW, NOW + timedelta(hours=49), window)
    assert not refund_due({"channel": "app"}, NOW, NOW + timedelta(hours=1), window)


def test_a_retried_request_names_the_same_subscription() -> None:
    assert subscription_id_for("app", "84901234567", "k1") == subscription_id_for("app", "84901234567", "k1")
    assert subscription_id_for("app", "84901234567", "k1") != subscription_id_for("app", "84901234567", "k2")


def test_vas_months_and_dates_shown_are_vietnamese_not_utc() -> None:
    five_on_the_first = datetime(2026, 2, 28, 22, 0, tzinfo=UTC)  # 05:00, 1 March in Hà Nội
    assert month_of(five_on_the_first) == "2026-03"
    assert wall_date(five_on_the_first) == "01/03/2026"
    assert slot_claim(template(sub(), NOW), 0, five_on_the_first, "c")["month"] == "2026-03"


def pack_template(code: str) -> dict[str, Any]:
    item = next(p for p in DEMO_PACKS if p.code == code)
    fields = {"code": code, "name": item.name_vi, "item_kind": "pack", "price_vnd": item.price_vnd}
    return template(sub(**fields, period_days=item.period_days, grants=item.grants()), NOW)


def test_a_data_pack_charge_carries_its_bucket_and_a_vas_charge_none() -> None:
    pack = slot_claim(pack_template("D15"), 1, NOW, "c")
    assert (pack["_id"], pack["kind"]) == ("sub-X:1", "data_pack_renewal")
    assert [(g["grant_id"], g["kind"], g["quantity"]) for g in pack["grants"]] == [
        ("D15-sub-X-1", "data", int(1.5 * 1024 * 1024))
    ]
    assert pack["period_start"] == NOW + timedelta(days=1)
    vas = slot(0)
    assert (vas["kind"], vas["grants"]) == ("vas_first", [])
    assert vas["event_id"] == slot_claim(template(sub(), NOW), 0, NOW, "other")["event_id"]


def test_a_voice_pack_grants_its_minutes_with_the_charge() -> None:
    v50 = slot_claim(pack_template("V50"), 0, NOW, "c")
    assert v50["kind"] == "data_pack"
    assert [(g["kind"], g["quantity"]) for g in v50["grants"]] == [("voice", 500 * 60)]
    _, end = period_bounds(NOW, 30, 0)
    assert v50["grants"][0]["expires_at"] == end.isoformat()


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
