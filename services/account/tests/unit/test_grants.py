"""VAS charges, plan changes and loyalty rewards as balance decisions, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_service.domain.balances import (
    ACCOUNT_MAX,
    ENTRY_ID_MAX,
    Balances,
    Change,
    DataBucket,
    Outcome,
    PromoAccount,
    apply_usage,
    fit,
    from_document,
    to_document,
)
from account_service.domain.grants import (
    change_plan,
    charge_vas,
    grant_airtime,
    grant_data,
    new_allowance,
    new_bucket,
    refund_vas,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
N = "84901234567"


def pack(bucket_id: str = "D15-1", kb: int = 1_500_000, days: int = 1) -> DataBucket:
    return new_bucket(bucket_id, "D15", kb, NOW + timedelta(days=days))


def test_a_vas_fee_is_taken_from_main_only_even_when_promotional_credit_could_pay() -> None:
    b = Balances(N, main=3_000, promos=(PromoAccount("p", "Promo", 50_000, NOW + timedelta(days=5)),))
    after, outcome = charge_vas(b, status="active", amount=5_000, grants=[], description="FUNRING")
    assert after == b
    assert outcome.changes == ()
    assert outcome.refusal is not None
    assert (outcome.refusal.reason, outcome.refusal.requested, outcome.refusal.available) == (
        "insufficient_funds",
        5_000,
        3_000,
    )


def test_a_vas_fee_the_main_balance_covers_exactly_leaves_zero() -> None:
    after, outcome = charge_vas(
        Balances(N, main=5_000), status="active", amount=5_000, grants=[], description="FUNRING"
    )
    assert after.main == 0
    assert outcome.changes == (Change("main", "vnd", -5_000, 0, "vas_charge", "FUNRING"),)


def test_a_data_pack_charge_creates_its_bucket_in_the_same_decision() -> None:
    after, outcome = charge_vas(
        Balances(N, main=20_000), status="active", amount=10_000, grants=[pack()], description="D15"
    )
    assert after.main == 10_000
    assert [(c.account, c.unit, c.delta, c.balance_after) for c in outcome.changes] == [
        ("main", "vnd", -10_000, 10_000),
        ("data:D15-1", "kb", 1_500_000, 1_500_000),
    ]
    assert [d.id for d in after.live_data(NOW)] == ["D15-1"]


def test_a_refused_data_pack_grants_no_bucket() -> None:
    b = Balances(N, main=9_999)
    after, outcome = charge_vas(b, status="active", amount=10_000, grants=[pack()], description="D15")
    assert after == b and outcome.changes == () and outcome.refusal is not None


def test_a_free_pack_is_only_its_bucket_and_a_free_vas_still_answers_with_an_entry() -> None:
    _, free_pack = charge_vas(Balances(N), status="active", amount=0, grants=[pack()], description="gift")
    assert [c.account for c in free_pack.changes] == ["data:D15-1"]
    _, free_vas = charge_vas(Balances(N), status="active", amount=0, grants=[], description="trial")
    assert [(c.account, c.delta) for c in free_vas.changes] == [("main", 0)]


def test_postpaid_fees_accrue_to_the_unbilled_amount_and_are_never_refused() -> None:
    b = Balances(N, plan="postpaid", unbilled=1_000)
    after, outcome = charge_vas(b, status="active", amount=90_000, grants=[pack()], description="D15")
    assert after.unbilled == 91_000 and after.main == 0 and outcome.refusal is None
    assert [c.account for c in outcome.changes] == ["unbilled", "data:D15-1"]


def test_numbers_the_operator_no_longer_serves_are_not_charged() -> None:
    for status in (None, "terminated", "ported_out"):
        after, outcome = charge_vas(
            Balances(N, main=50_000), status=status, amount=1_000, grants=[pack()], description="x"
        )
        assert outcome.refusal is not None and outcome.refusal.reason == "no_such_account", status
        assert after.main == 50_000 and after.data == ()


def test_usage_drains_a_bought_pack_before_a_later_expiring_one() -> None:
    b, _ = charge_vas(
        Balances(N, main=100_000),
        status="active",
        amount=0,
        grants=[pack("month", 5_000, 30)],
        description="m",
    )
    b, _ = charge_vas(b, status="active", amount=0, grants=[pack("day", 1_000, 1)], description="d")
    _, outcome = apply_usage(b, kind="data", quantity=1_500, charge_vnd=0, now=NOW, description="data")
    assert [(c.account, c.delta) for c in outcome.changes] == [("data:day", -1_000), ("data:month", -500)]


def test_a_bucket_id_seen_again_is_topped_up_so_it_stays_its_journal_sum() -> None:
    b, first = charge_vas(Balances(N), status="active", amount=0, grants=[pack("x", 1_000)], description="1")
    b, _ = apply_usage(b, kind="data", quantity=400, charge_vnd=0, now=NOW, description="use")
    b, again = charge_vas(b, status="active", amount=0, grants=[pack("x", 1_000, 2)], description="2")
    (bucket,) = b.data
    assert (bucket.remaining_kb, bucket.total_kb, bucket.expires_at) == (
        1_600,
        2_000,
        NOW + timedelta(days=2),
    )
    assert first.changes[0].delta - 400 + again.changes[0].delta == bucket.remaining_kb


def test_drained_buckets_are_dropped_when_a_new_one_arrives() -> None:
    b = Balances(N, data=(DataBucket("old", "old", 0, 1_000, NOW + timedelta(days=3)),))
    after, _ = charge_vas(b, status="active", amount=0, grants=[pack("new")], description="new")
    assert [d.id for d in after.data] == ["new"]


def test_long_ids_from_other_services_still_fit_the_ledger_event_fields() -> None:
    long_id = "b" * 64
    bucket = pack(long_id)
    assert len(f"data:{bucket.id}") <= ACCOUNT_MAX
    assert bucket.id == pack(long_id).id, "the same id every time: a replay names the same bucket"
    assert pack("short").id == "short"
    change = Change(f"data:{bucket.id}", "kb", 1, 1, "vas_charge", "")
    assert len(change.entry_id("vas:" + "c" * 96)) <= ENTRY_ID_MAX
    assert fit("a" * 70, 64) != fit("a" * 71, 64)


def test_a_plan_change_sets_the_tariff_and_later_debits_follow_its_billing() -> None:
    b, outcome = change_plan(Balances(N, main=10_000), status="active", billing="postpaid", plan_code="MOBIF")
    assert (b.plan, b.plan_code, outcome.changes) == ("postpaid", "MOBIF", ())
    after, fee = charge_vas(b, status="active", amount=50_000, grants=[], description="x")
    assert after.unbilled == 50_000 and after.main == 10_000 and fee.refusal is None
    assert from_document({"_id": N, **to_document(b)}) == b


def test_airtime_rewards_credit_main_for_active_subscribers() -> None:
    after, outcome = grant_airtime(Balances(N, main=1_000), status="active", amount=20_000, description="r")
    assert after.main == 21_000
    assert [(c.account, c.delta, c.reason) for c in outcome.changes] == [
        ("main", 20_000, "loyalty_redemption")
    ]


def test_a_data_reward_is_a_bucket_valid_from_the_redemption() -> None:
    redeemed = NOW - timedelta(hours=1)
    after, outcome = grant_data(
        Balances(N),
        status="active",
        redemption_id="rdm-1",
        name="Loyalty DATA-2GB",
        quota_kb=2_097_152,
        redeemed_at=redeemed,
        validity_days=7,
        description="r",
    )
    (bucket,) = after.live_data(NOW)
    assert (bucket.id, bucket.remaining_kb, bucket.expires_at) == (
        "loyalty:rdm-1",
        2_097_152,
        redeemed + timedelta(days=7),
    )
    assert [(c.account, c.delta) for c in outcome.changes] == [("data:loyalty:rdm-1", 2_097_152)]


def test_rewards_are_declined_for_unknown_or_inactive_numbers_and_change_nothing() -> None:
    b = Balances(N, main=1_000)
    for status, reason in ((None, "no_such_subscriber"), ("suspended", "not_eligible")):
        after, outcome = grant_airtime(b, status=status, amount=5_000, description="r")
        assert after == b and outcome.changes == ()
        assert outcome.declined is not None and outcome.declined.reason == reason


def test_a_refund_goes_back_where_the_charge_was_paid_from() -> None:
    after, outcome = refund_vas(
        Balances(N, main=1_000), amount=5_000, charged_main=5_000, charged_unbilled=0, description="r"
    )
    assert after.main == 6_000 and [(c.account, c.delta) for c in outcome.changes] == [("main", 5_000)]
    billed = Balances(N, plan="postpaid", unbilled=3_000)
    after, outcome = refund_vas(billed, amount=5_000, charged_main=0, charged_unbilled=5_000, description="r")
    # 3 000 still on the bill comes off it; the 2 000 already billed is credited to main.
    assert (after.unbilled, after.main) == (0, 2_000)
    assert [(c.account, c.delta) for c in outcome.changes] == [("unbilled", -3_000), ("main", 2_000)]


def test_a_refund_is_never_more_than_the_charge() -> None:
    with pytest.raises(ValueError, match="refund"):
        refund_vas(Balances(N), amount=5_001, charged_main=5_000, charged_unbilled=0, description="r")
    with pytest.raises(ValueError, match="refund"):
        refund_vas(Balances(N), amount=1, charged_main=0, charged_unbilled=0, description="refused charge")


def test_a_voice_pack_grants_its_minutes_with_the_fee_and_calls_drain_them_before_money() -> None:
    minutes = new_allowance("V50-1", "voice", "V50", 500 * 60, NOW + timedelta(days=30))
    b, outcome = charge_vas(
        Balances(N, main=60_000), status="active", amount=50_000, grants=[minutes], description="V50"
    )
    assert b.main == 10_000
    assert [(c.account, c.unit, c.delta) for c in outcome.changes] == [
        ("main", "vnd", -50_000),
        ("voice:V50-1", "seconds", 30_000),
    ]
    b, call = apply_usage(b, kind="voice", quantity=600, charge_vnd=0, now=NOW, description="call")
    assert [(c.account, c.delta, c.balance_after) for c in call.changes] == [("voice:V50-1", -600, 29_400)]
    assert from_document({"_id": N, **to_document(b)}) == b
    later = NOW + timedelta(days=31)  # expired with the pack: calls are money again
    _, expired = apply_usage(b, kind="voice", quantity=60, charge_vnd=1_000, now=later, description="call")
    assert [(c.account, c.delta) for c in expired.changes] == [("main", -1_000)]


def test_sms_allowances_drain_by_message_and_a_free_voice_pack_still_answers_with_a_money_entry() -> None:
    texts = new_allowance("S1", "sms", "SMS pack", 100, NOW + timedelta(days=7))
    b, outcome = charge_vas(Balances(N), status="active", amount=0, grants=[texts], description="gift")
    assert [(c.account, c.unit, c.delta) for c in outcome.changes] == [
        ("main", "vnd", 0),
        ("sms:S1", "messages", 100),
    ]
    _, sent = apply_usage(b, kind="sms", quantity=3, charge_vnd=0, now=NOW, description="sms")
    assert [(c.account, c.delta, c.balance_after) for c in sent.changes] == [("sms:S1", -3, 97)]


def test_a_plan_change_for_a_number_not_live_in_the_registry_changes_nothing() -> None:
    for status in (None, "terminated", "ported_out"):
        b = Balances(N, main=10_000)
        after, outcome = change_plan(b, status=status, billing="postpaid", plan_code="MOBIF")
        assert after == b and outcome.declined is not None and not outcome.changes


def test_two_refund_ids_for_one_charge_are_one_decision() -> None:
    from account_service.decisions import idempotency_key
    from mobi_contracts.events.vas import VasRefundRequested, VasRefundRequestedData

    def refund(refund_id: str) -> VasRefundRequested:
        return VasRefundRequested.new(
            subject=N,
            producer="vas-service",
            correlation_id="t",
            data=VasRefundRequestedData(
                refund_id=refund_id,
                charge_id="sub-X:0",
                subscription_id="sub-X",
                amount_vnd=3000,
                requested_at=NOW,
            ),
        )

    assert idempotency_key(refund("sub-X:0:refund")) == idempotency_key(refund("another-id"))
    assert idempotency_key(refund("sub-X:0:refund")) == "vasrefund:sub-X:0:refund"  # older decisions' key


def test_allowance_entries_are_journaled_but_only_money_and_data_are_announced() -> None:
    from account_service.announcements import announced
    from account_service.decisions import journal_document
    from servicekit.testing import vas_charge_requested

    minutes = new_allowance("V50-1", "voice", "V50", 600, NOW + timedelta(days=30))
    after, outcome = charge_vas(
        Balances(N, main=60_000), status="active", amount=50_000, grants=[minutes], description="V50"
    )
    doc = journal_document(vas_charge_requested(N, "sub-X:0", 50_000), outcome, after.next_decision(), NOW)
    assert [e["unit"] for e in doc["entries"]] == ["vnd", "seconds"]
    assert [e.data.unit for e in announced(doc)] == ["vnd"]  # type: ignore[union-attr]


def test_a_decisions_events_derived_again_are_the_same_events_and_older_decisions_send_what_they_stored() -> (
    None
):
    from account_service.announcements import implied_events
    from account_service.decisions import journal_document
    from mobi_contracts.topics import ACCOUNT_EVENTS
    from servicekit.testing import usage_recorded

    after, outcome = a_call_beyond_the_balance()
    doc = journal_document(usage_recorded(N, 9_000, "u-1"), outcome, after.next_decision(), NOW)
    first, again = implied_events(doc, ACCOUNT_EVENTS), implied_events(dict(doc), ACCOUNT_EVENTS)
    assert first == again and [e["headers"]["event-type"] for e in first] == ["BalanceChangeRejected"]
    stored = [{**first[0], "value": "as stored"}]
    assert implied_events({**doc, "events": stored}, ACCOUNT_EVENTS) == stored


def a_call_beyond_the_balance() -> tuple[Balances, Outcome]:
    return apply_usage(
        Balances(N, main=1_000), kind="voice", quantity=60, charge_vnd=9_000, now=NOW, description="v"
    )
