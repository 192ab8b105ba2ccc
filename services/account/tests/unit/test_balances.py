"""Balance rules, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_service.domain.balances import (
    Balances,
    DataBucket,
    PromoAccount,
    apply_usage,
    credit_main,
    debit_money,
    from_document,
    to_document,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def promo(pid: str, balance: int, days: int) -> PromoAccount:
    return PromoAccount(pid, f"Promo {pid}", balance, NOW + timedelta(days=days))


def bucket(bid: str, kb: int, days: int) -> DataBucket:
    return DataBucket(bid, f"Data {bid}", kb, kb, NOW + timedelta(days=days))


def test_a_credit_raises_main_and_reports_one_ledger_change() -> None:
    after, outcome = credit_main(Balances("84901234567", main=5_000), 100_000, "topup", "Top-up")
    assert after.main == 105_000
    (change,) = outcome.changes
    assert (change.account, change.delta, change.balance_after) == ("main", 100_000, 105_000)


def test_a_credit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        credit_main(Balances("84901234567"), 0, "topup", "x")


def test_usage_is_paid_from_the_promo_expiring_first_then_main() -> None:
    b = Balances("84901234567", main=10_000, promos=(promo("late", 5_000, 20), promo("soon", 3_000, 2)))
    after, outcome = debit_money(b, 9_000, NOW, "usage", "voice")
    assert [(c.account, c.delta) for c in outcome.changes] == [
        ("promo:soon", -3_000),
        ("promo:late", -5_000),
        ("main", -1_000),
    ]
    assert after.main == 9_000
    assert {p.id: p.balance for p in after.promos} == {"late": 0, "soon": 0}


def test_a_debit_never_takes_the_balance_below_zero_and_changes_nothing_when_refused() -> None:
    b = Balances("84901234567", main=2_000, promos=(promo("p", 1_000, 5),))
    after, outcome = debit_money(b, 3_001, NOW, "usage", "voice")
    assert after == b
    assert outcome.changes == ()
    assert outcome.refusal is not None and outcome.refusal.available == 3_000


def test_expired_promotions_do_not_pay() -> None:
    b = Balances("84901234567", main=1_000, promos=(promo("old", 50_000, -1),))
    _, outcome = debit_money(b, 2_000, NOW, "usage", "voice")
    assert outcome.refusal is not None


def test_postpaid_usage_accrues_to_the_bill_and_is_never_refused() -> None:
    b = Balances("84931234567", plan="postpaid", unbilled=10_000)
    after, outcome = debit_money(b, 50_000, NOW, "usage", "voice")
    assert after.unbilled == 60_000 and outcome.refusal is None
    assert outcome.changes[0].account == "unbilled"


def test_data_comes_from_buckets_soonest_to_expire_first_and_stops_at_zero() -> None:
    b = Balances(
        "84901234567", data=(bucket("month", 1_000, 30), bucket("day", 300, 1), bucket("gone", 999, -1))
    )
    after, outcome = apply_usage(b, kind="data", quantity=500, charge_vnd=0, now=NOW, description="data")
    assert [(c.account, c.delta) for c in outcome.changes] == [("data:day", -300), ("data:month", -200)]
    assert {d.id: d.remaining_kb for d in after.data} == {"month": 800, "day": 0, "gone": 999}


def test_refused_money_charge_leaves_data_buckets_untouched() -> None:
    b = Balances("84901234567", main=0, data=(bucket("d", 1_000, 3),))
    after, outcome = apply_usage(b, kind="data", quantity=500, charge_vnd=700, now=NOW, description="data")
    assert after == b and outcome.refusal is not None


def test_each_decision_advances_the_sequence_by_one() -> None:
    b = Balances("84901234567", seq=41)
    assert b.next_decision().seq == 42 and b.seq == 41


def test_documents_round_trip() -> None:
    b = Balances("84901234567", "prepaid", 7, 0, (promo("p", 1, 3),), (bucket("d", 9, 3),), seq=3)
    assert from_document({"_id": b.msisdn, **to_document(b)}) == b
