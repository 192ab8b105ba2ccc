from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mobi_contracts.events.account import BalanceChanged, BalanceChangedData
from mobi_contracts.events.loyalty import ECodeIssued, ECodeIssuedData, ECodeIssuedV2, ECodeIssuedV2Data
from mobi_contracts.events.payment import BillPaid, BillPaidData
from mobi_contracts.events.stores import (
    FeedbackAnswered,
    FeedbackAnsweredData,
    FeedbackAnsweredV2,
    FeedbackAnsweredV2Data,
)
from mobi_contracts.events.vas import VasRenewalDue, VasRenewalDueData, VasSubscribed, VasSubscribedData
from notify_service.domain.notices import news_until, notice_for
from servicekit.testing import topup_recorded

RULES = {"low_balance_vnd": 10_000, "receipt_max_age_seconds": 24 * 3600}
N = "84901234567"
NOW = datetime(2026, 12, 7, 10, tzinfo=UTC)


def debit(delta: int, after: int, account: str = "main", cause: str = "UsageRecorded") -> BalanceChanged:
    return BalanceChanged.new(
        subject="84901234567",
        data=BalanceChangedData(
            entry_id="usage:1:main",
            account=account,
            unit="vnd",
            delta=delta,
            balance_after=after,
            reason="usage",
            cause_event_id="x",
            cause_event_type=cause,
        ),
        producer="tests",
        correlation_id="t",
    )


def test_a_topup_becomes_a_receipt_with_the_amount_in_both_languages() -> None:
    notice = notice_for(topup_recorded("84901234567", 100_000, "TP-1"), RULES)
    assert notice is not None and notice.kind == "topup_receipt"
    assert "100.000 đ" in notice.body["vi"] and "100.000 đ" in notice.body["en"]


@pytest.mark.parametrize(
    ("delta", "after", "alerts"),
    [
        (-2_000, 9_000, True),  # 11,000 -> 9,000 crosses the threshold
        (-2_000, 7_000, False),  # already below: alerted before
        (-2_000, 10_000, False),  # not below yet
        (5_000, 9_000, False),  # a credit never alerts
    ],
)
def test_low_balance_alerts_once_when_a_debit_crosses_the_threshold(
    delta: int, after: int, alerts: bool
) -> None:
    assert (notice_for(debit(delta, after), RULES) is not None) is alerts


def test_promotional_accounts_do_not_raise_low_balance_alerts() -> None:
    assert notice_for(debit(-2_000, 9_000, account="promo:tet"), RULES) is None


def test_events_without_a_renderer_are_not_pushed() -> None:
    bill = BillPaid.new(
        subject="84931234567",
        data=BillPaidData(
            bill_id="B1", amount_vnd=1, payment_id="P", payer_msisdn="84931234567", paid_at=datetime.now(UTC)
        ),
        producer="tests",
        correlation_id="t",
    )
    assert notice_for(bill, RULES) is None


def test_every_pushed_or_projected_event_type_is_consumed_by_the_notify_group() -> None:
    from mobi_contracts.events.notify import PromotionPublished
    from mobi_contracts.topics import NOTIFY_GROUP, TENANCY_ENDED_EVENTS
    from notify_service.domain.notices import RENDERERS
    from notify_service.projections import PROJECTORS

    # A tenancy's end is acted on (notify_service.tenancy), neither pushed nor projected.
    assert set(NOTIFY_GROUP.handles) == {*RENDERERS, *PROJECTORS, PromotionPublished, *TENANCY_ENDED_EVENTS}


def test_the_previous_owners_balance_closing_is_no_low_balance_alert_for_the_new_one() -> None:
    assert notice_for(debit(-50_000, 0, cause="SubscriberOwnerChanged"), RULES) is None


def envelope(kind: type, data: object) -> object:
    return kind.new(subject=N, data=data, producer="tests", correlation_id="t", occurred_at=NOW)


def test_an_ecode_or_an_answer_is_pushed_as_something_to_read_in_the_app_never_the_code_or_text() -> None:
    window = {"valid_from": NOW, "valid_to": NOW + timedelta(days=30), "issued_at": NOW}
    old = envelope(
        ECodeIssued, ECodeIssuedData(offer_id="CAFE", partner="Cà phê", code="CAFE-SECRET-1", **window)
    )
    new = envelope(
        ECodeIssuedV2, ECodeIssuedV2Data(offer_id="CAFE", partner="Cà phê", ecode_id="CAFE:1", **window)
    )
    answered = envelope(
        FeedbackAnswered,
        FeedbackAnsweredData(ticket="GY-1", status="answered", reply="Mật khẩu là 1234", answered_at=NOW),
    )
    answered_v2 = envelope(
        FeedbackAnsweredV2,
        FeedbackAnsweredV2Data(ticket="GY-1", status="answered", has_reply=True, answered_at=NOW),
    )
    for event, secret in ((old, "CAFE-SECRET-1"), (new, "CAFE:1"), (answered, "1234"), (answered_v2, "GY-1")):
        notice = notice_for(event, RULES)  # type: ignore[arg-type]
        assert notice is not None
        shown = " ".join([*notice.title.values(), *notice.body.values(), *notice.data.values()])
        assert secret not in shown
        assert "app" in notice.body["en"].lower()


def test_what_is_news_depends_on_the_kind_not_on_age_alone() -> None:
    due = NOW + timedelta(hours=24)
    notice_of = envelope(
        VasRenewalDue,
        VasRenewalDueData(subscription_id="s1", code="FUNRING", period=3, amount_vnd=5_000, due_at=due),
    )
    consent = envelope(
        VasSubscribed,
        VasSubscribedData(
            subscription_id="s2", code="GAME", item_kind="vas", channel="partner_web", price_vnd=3_000,
            period_days=1, needs_confirmation=True, requested_at=NOW,
        ),
    )  # fmt: skip
    receipt = topup_recorded(N, 50_000, "TP-9")
    for event, until in (
        (notice_of, due),  # news until the renewal: skip or cancel still possible
        (consent, NOW + timedelta(days=1)),
        (receipt, receipt.occurred_at + timedelta(hours=24)),
    ):
        notice = notice_for(event, RULES)  # type: ignore[arg-type]
        assert notice is not None
        assert news_until(event, notice, RULES) == until  # type: ignore[arg-type]


def test_a_renewal_at_five_on_the_first_of_march_in_vietnam_is_announced_as_the_first_of_march() -> None:
    from mobi_contracts.events.vas import VasRenewalDue, VasRenewalDueData, VasRenewed, VasRenewedData

    due = datetime(2026, 2, 28, 22, 0, tzinfo=UTC)  # 05:00 on 1 March in Hà Nội
    notice = notice_for(
        VasRenewalDue.new(
            subject="84901234567",
            producer="vas-service",
            correlation_id="t",
            data=VasRenewalDueData(
                subscription_id="sub-X", code="MCLIP", period=3, amount_vnd=3000, due_at=due
            ),
        ),
        RULES,
    )
    assert notice is not None and "01/03" in notice.body["vi"] and "28/02" not in notice.body["vi"]
    renewed = notice_for(
        VasRenewed.new(
            subject="84901234567",
            producer="vas-service",
            correlation_id="t",
            data=VasRenewedData(
                subscription_id="sub-X",
                code="MCLIP",
                charge_id="sub-X:3",
                period=3,
                period_start=due,
                period_end=due,
            ),
        ),
        RULES,
    )
    assert renewed is not None and "01/03/2026" in renewed.body["vi"]
