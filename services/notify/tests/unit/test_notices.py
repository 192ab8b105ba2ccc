from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mobi_contracts.events.account import BalanceChanged, BalanceChangedData
from mobi_contracts.events.payment import BillPaid, BillPaidData
from notify_service.domain.notices import notice_for
from servicekit.testing import topup_recorded

RULES = {"low_balance_vnd": 10_000}


def debit(delta: int, after: int, account: str = "main") -> BalanceChanged:
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
            cause_event_type="UsageRecorded",
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
    from mobi_contracts.topics import NOTIFY_GROUP
    from notify_service.domain.notices import RENDERERS
    from notify_service.projections import PROJECTORS

    assert set(NOTIFY_GROUP.handles) == {*RENDERERS, *PROJECTORS, PromotionPublished}


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
