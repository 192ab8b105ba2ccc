"""The programme's rules as plain functions: earning, spending oldest first, expiry, tiers,
transfer limits and eligibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loyalty_service.domain.rules import EarningRules, Eligibility, TransferRules, tier_for, tier_progress
from loyalty_service.domain.wallet import (
    Refused,
    Wallet,
    close,
    due_months,
    earn,
    expire_month,
    from_document,
    put_back,
    reopened,
    send,
    spend,
    to_document,
)
from servicekit.vntime import month_start

NOV = datetime(2026, 11, 20, 3, tzinfo=UTC)
M = "84901234567"


def test_points_earned_expire_at_the_start_of_the_month_after_their_validity() -> None:
    change = earn(Wallet(msisdn=M), 100, NOV, valid_months=12)
    assert change.buckets == {"2027-12": 100}
    assert month_start("2027-12") == datetime(2027, 11, 30, 17, tzinfo=UTC)  # midnight in Vietnam
    assert change.state.points == 100
    assert change.state.seq == 1
    assert change.state.earned == {"2026-11": 100}


def test_spending_takes_the_points_that_expire_first() -> None:
    w = earn(Wallet(msisdn=M), 100, NOV - timedelta(days=60), 12).state
    w = earn(w, 100, NOV, 12).state
    change = spend(w, 150)
    assert change.buckets == {"2027-10": -100, "2027-12": -50}
    assert change.state.buckets == {"2027-12": 50}
    assert change.state.points == 50


def test_spending_more_than_the_balance_is_refused_and_changes_nothing() -> None:
    w = earn(Wallet(msisdn=M), 100, NOV, 12).state
    with pytest.raises(Refused) as refused:
        spend(w, 101)
    assert refused.value.code == "insufficient_points"
    assert w.points == 100


def test_points_put_back_return_to_the_months_they_came_from() -> None:
    w = earn(Wallet(msisdn=M), 100, NOV - timedelta(days=60), 12).state
    w = earn(w, 100, NOV, 12).state
    taken = spend(w, 150)
    back = put_back(taken.state, taken.buckets)
    assert back.state.buckets == w.buckets
    assert back.delta == 150


def test_expiry_takes_exactly_the_buckets_due_month_by_month_and_only_once() -> None:
    w = earn(Wallet(msisdn=M), 70, NOV - timedelta(days=400), 12).state
    w = earn(w, 30, NOV, 12).state
    assert due_months(w, NOV) == ["2026-11"]
    change = expire_month(w, "2026-11", NOV)
    assert change is not None
    assert change.delta == -70 and change.buckets == {"2026-11": -70}
    assert change.state.points == 30
    assert due_months(change.state, NOV) == []
    assert expire_month(change.state, "2026-11", NOV) is None


def test_nothing_expires_before_its_month_starts() -> None:
    w = earn(Wallet(msisdn=M), 70, NOV, 12).state
    assert expire_month(w, "2027-12", month_start("2027-12") - timedelta(seconds=1)) is None
    assert due_months(w, month_start("2027-12") - timedelta(seconds=1)) == []
    assert expire_month(w, "2027-12", month_start("2027-12")) is not None


def test_a_closed_membership_keeps_nothing_and_the_next_owner_starts_afresh_on_its_ledger() -> None:
    w = earn(
        Wallet(msisdn=M, enrolled_at=NOV - timedelta(days=500)), 9000, NOV - timedelta(days=40), 12
    ).state
    w = send(w, 100, NOV).state
    closed = close(w)
    assert closed.delta == -8900 and closed.state.points == 0 and closed.state.buckets == {}
    assert (
        closed.state.closed
        and closed.state.tier == "member"
        and closed.state.earned == {} == closed.state.sent
    )
    assert not closed.state.is_open_for(NOV - timedelta(days=600))
    fresh = reopened(closed.state, NOV, "1764000000000")
    assert (fresh.seq, fresh.points, fresh.closed, fresh.enrolled_at) == (closed.state.seq, 0, False, NOV)
    assert fresh.member_key == f"{M}:1764000000000" and Wallet(msisdn=M).member_key == M
    assert fresh.is_open_for(NOV) and not w.is_open_for(NOV), "the old membership is not the new owner's"
    assert from_document(M, to_document(closed.state)).closed


def test_earning_follows_the_tier_rate_and_the_caps() -> None:
    rules = EarningRules(vnd_per_point=1000, max_points_per_event=5000, max_per_month=600)
    assert rules.for_payment(Wallet(msisdn=M), 100_000, NOV) == 100
    assert rules.for_payment(Wallet(msisdn=M, tier="gold"), 100_000, NOV) == 150
    assert rules.for_payment(Wallet(msisdn=M, tier="diamond"), 10_000_000, NOV) == 600  # month cap
    assert rules.for_payment(Wallet(msisdn=M, earned={"2026-11": 550}), 100_000, NOV) == 50
    assert rules.for_payment(Wallet(msisdn=M), 999, NOV) == 0
    big = EarningRules(max_points_per_event=5000, max_per_month=10**9)
    assert big.for_payment(Wallet(msisdn=M), 50_000_000, NOV) == 5000


def test_tenure_points_grow_with_full_years_up_to_the_cap() -> None:
    rules = EarningRules(tenure_points_per_year=10, tenure_points_max=100)
    assert rules.for_tenure(NOV - timedelta(days=364), NOV) == 0
    assert rules.for_tenure(NOV - timedelta(days=3 * 365 + 1), NOV) == 30
    assert rules.for_tenure(NOV - timedelta(days=40 * 365), NOV) == 100
    assert rules.for_tenure(None, NOV) == 0


def test_tier_is_by_points_earned_in_the_last_twelve_months() -> None:
    w = Wallet(msisdn=M, earned={"2025-11": 50_000, "2025-12": 2_500, "2026-11": 8_000})
    assert w.qualifying(NOV) == 10_500  # November 2025 is 12 months back: out
    assert tier_for(w.qualifying(NOV)) == "gold"
    assert tier_for(0) == "member"
    assert tier_for(1_999) == "member"
    assert tier_for(30_000) == "diamond"
    assert tier_progress(w, NOV) == {
        "qualifying_points": 10_500,
        "next_tier": "diamond",
        "points_to_next_tier": 19_500,
    }


def test_transfer_limits_per_transfer_per_day_and_minimum_remaining() -> None:
    rules = TransferRules(min_points=10, max_points=1000, daily_max=1500, min_remaining=50)
    w = earn(Wallet(msisdn=M), 5000, NOV, 12).state
    for points, code in ((9, "transfer_amount_out_of_range"), (1001, "transfer_amount_out_of_range")):
        with pytest.raises(Refused) as refused:
            rules.check(w, points, NOV)
        assert refused.value.code == code
    rules.check(w, 1000, NOV)
    after = send(w, 1000, NOV).state
    with pytest.raises(Refused) as refused:
        rules.check(after, 600, NOV)
    assert refused.value.code == "daily_transfer_limit"
    rules.check(after, 600, NOV + timedelta(days=1))  # a new day
    poor = earn(Wallet(msisdn=M), 100, NOV, 12).state
    with pytest.raises(Refused) as refused:
        rules.check(poor, 60, NOV)
    assert refused.value.code == "insufficient_points"


def test_enrolment_needs_an_active_subscription_old_enough() -> None:
    rules = Eligibility(min_tenure_days=30)
    since = NOV - timedelta(days=31)
    assert rules.check({"status": "active", "since": since.isoformat()}, NOV) == since
    for subscriber, code in (
        (None, "not_a_subscriber"),
        ({"status": "suspended"}, "not_eligible"),
        ({"status": "active", "since": (NOV - timedelta(days=29)).isoformat()}, "not_eligible"),
    ):
        with pytest.raises(Refused) as refused:
            rules.check(subscriber, NOV)
        assert refused.value.code == code
    assert rules.check({"status": "active"}, NOV) is None  # no date known: let in
    with pytest.raises(Refused):
        Eligibility(require_known_tenure=True).check({"status": "active"}, NOV)


def test_a_wallet_survives_its_stored_form() -> None:
    w = earn(Wallet(msisdn=M, enrolled_at=NOV), 100, NOV, 12).state
    w = send(w, 40, NOV).state
    assert from_document(M, to_document(w)) == w
