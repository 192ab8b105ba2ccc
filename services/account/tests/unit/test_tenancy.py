"""A number that changes hands, without any server: which provisioning changes start a new
tenancy and what they announce, and which balances the next owner does not inherit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from account_service.domain.balances import Balances, DataBucket, PromoAccount
from account_service.domain.grants import charge_vas, grant_airtime
from account_service.domain.provisioning import decide, owner_since_of
from account_service.domain.tenancy import end_tenancy, kept_by_tenancy
from mobi_contracts.events.subscriber import (
    SubscriberOwnerChanged,
    SubscriberReactivated,
    SubscriberSuspended,
    SubscriberTerminated,
)
from servicekit.tenancy import EPOCH

N = "84771234567"
NOW = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)
ACTIVATED = datetime(2019, 3, 1, tzinfo=UTC)
OWNER = {"name": "Nguyễn Văn A", "plan": "prepaid", "status": "active", "ported_in": False}


def stored(**fields: object) -> dict[str, object]:
    return {"_id": N, **OWNER, "since": ACTIVATED, **fields}


def test_a_new_number_starts_its_first_tenancy_now_and_announces_nothing() -> None:
    change = decide(N, None, OWNER, NOW, "req")
    assert change is not None
    assert change.seq == 1 and change.event is None and not change.ends_sessions
    assert change.state["owner_since"] == NOW.replace(microsecond=123000)  # the store's precision


def test_the_same_request_again_changes_nothing() -> None:
    assert decide(N, stored(owner_since=ACTIVATED, change_seq=3), OWNER, NOW, "req") is None
    assert decide(N, {"_id": N, "name": OWNER["name"]}, OWNER, NOW, "req") is None  # defaults


def test_another_name_is_a_new_owner_whose_tenancy_and_tenure_start_now() -> None:
    change = decide(N, stored(change_seq=4), {**OWNER, "name": "Trần Thị B"}, NOW, "req-9")
    assert change is not None and change.new_owner and change.ends_sessions
    assert change.seq == 5 and change.change_id == f"{N}:5"
    event = change.event
    assert isinstance(event, SubscriberOwnerChanged)
    assert event.data.change_id == change.change_id and event.subject == N
    assert event.data.owner_since == change.state["owner_since"] == change.state["since"]
    assert event.data.previous_owner_since == ACTIVATED  # a legacy document: its activation date
    again = decide(N, stored(change_seq=4), {**OWNER, "name": "Trần Thị B"}, NOW, "req-9")
    assert again is not None and again.event is not None
    assert again.event.event_id == event.event_id, "a retried decision names the same event"


def test_a_status_change_keeps_the_tenancy_and_says_what_happened() -> None:
    before = stored(owner_since=ACTIVATED, change_seq=1)
    suspended = decide(N, before, {**OWNER, "status": "suspended"}, NOW, "req")
    assert suspended is not None and isinstance(suspended.event, SubscriberSuspended)
    assert suspended.state["owner_since"] == ACTIVATED and not suspended.new_owner
    back = decide(N, {**before, "status": "suspended"}, OWNER, NOW, "req")
    assert back is not None and isinstance(back.event, SubscriberReactivated)
    assert back.state["owner_since"] == ACTIVATED
    ended = decide(N, before, {**OWNER, "status": "terminated"}, NOW, "req")
    assert ended is not None and isinstance(ended.event, SubscriberTerminated)
    assert ended.event.data.owner_since == ACTIVATED  # the tenancy that ended


def test_a_number_back_from_termination_starts_a_new_tenancy_even_under_the_same_name() -> None:
    change = decide(N, stored(status="terminated", change_seq=2), OWNER, NOW, "req")
    assert change is not None and isinstance(change.event, SubscriberReactivated)
    assert change.state["owner_since"] == NOW.replace(microsecond=123000)


def test_a_plan_change_alone_is_no_lifecycle_event() -> None:
    change = decide(N, stored(change_seq=1), {**OWNER, "plan": "postpaid"}, NOW, "req")
    assert change is not None and change.event is None and not change.ends_sessions


def test_owner_since_falls_back_to_the_activation_date_then_to_always() -> None:
    assert owner_since_of({"owner_since": NOW, "since": ACTIVATED}) == NOW
    assert owner_since_of({"since": ACTIVATED.replace(tzinfo=None)}) == ACTIVATED
    assert owner_since_of({}) == EPOCH and owner_since_of(None) == EPOCH


def full_balances() -> Balances:
    later = NOW + timedelta(days=10)
    return Balances(
        N,
        main=120_000,
        unbilled=0,
        promos=(PromoAccount("KM1", "Promo", 30_000, later),),
        data=(DataBucket("D15", "D15", 900_000, 1_500_000, later),),
        seq=7,
    )


def test_every_account_the_previous_tenancy_left_goes_to_zero_in_one_decision() -> None:
    after, outcome = end_tenancy(full_balances(), {}, "closed")
    assert (after.main, after.promos, after.data) == (0, (), ())
    assert sorted((c.account, c.delta) for c in outcome.changes) == [
        ("data:D15", -900_000),
        ("main", -120_000),
        ("promo:KM1", -30_000),
    ]
    assert all(c.balance_after == 0 and c.reason == "adjustment" for c in outcome.changes)


def test_what_the_new_tenancy_already_put_there_is_kept_and_nothing_more() -> None:
    boundary = NOW
    decisions = [
        {"cause_at": boundary - timedelta(seconds=1), "entries": [{"account": "main", "delta": -5_000}]},
        {"cause_at": boundary + timedelta(seconds=3), "entries": [{"account": "main", "delta": 50_000}]},
        {"entries": [{"account": "main", "delta": 70_000}]},  # older decisions say no time
    ]
    kept = kept_by_tenancy(decisions, boundary)
    assert kept == {"main": 50_000}
    after, outcome = end_tenancy(full_balances(), kept, "closed")
    assert after.main == 50_000 and [
        (c.account, c.delta) for c in outcome.changes if c.account == "main"
    ] == [("main", -70_000)]
    spent, _ = end_tenancy(full_balances(), {"main": 500_000}, "closed")
    assert spent.main == 120_000, "never more than the account holds"


def test_a_previous_owners_subscription_or_reward_is_never_charged_or_granted_to_the_next() -> None:
    b = Balances(N, main=100_000)
    _, refused = charge_vas(
        b, status="active", amount=5_000, grants=(), description="FUNRING", previous_owner=True
    )
    assert refused.refusal is not None and refused.refusal.reason == "no_such_account"
    _, declined = grant_airtime(b, status="active", amount=10_000, description="gift", previous_owner=True)
    assert declined.declined is not None and declined.declined.reason == "not_eligible"
    assert not declined.changes
