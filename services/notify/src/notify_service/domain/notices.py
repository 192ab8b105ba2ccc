"""Transactional pushes: which events become a receipt or an alert, and their text (no I/O).

Adding an event type is one line in `RENDERERS` (and the type in NOTIFY_GROUP's `handles`).
Transactional pushes are not marketing: opt-outs and quiet hours do not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mobi_contracts import AnyEvent
from mobi_contracts.events.account import BalanceChanged
from mobi_contracts.events.loyalty import (
    ECodeIssued,
    PointsExpired,
    PointsTransferred,
    RedemptionGranted,
    TierChanged,
)
from mobi_contracts.events.payment import TopupRecorded
from mobi_contracts.events.stores import FeedbackAnswered
from mobi_contracts.events.vas import (
    DataPackPurchased,
    VasCancelled,
    VasChargeFailed,
    VasRenewalDue,
    VasRenewed,
    VasSubscribed,
)

from .quiet import VIETNAM


@dataclass(frozen=True)
class Notice:
    """One push to all of a subscriber's devices, in both languages."""

    kind: str
    title: dict[str, str]
    body: dict[str, str]
    deep_link: str
    data: dict[str, str] = field(default_factory=dict)


def vnd(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " đ"


def topup_receipt(event: TopupRecorded, _: dict[str, Any]) -> Notice:
    amount = vnd(event.data.amount_vnd)
    return Notice(
        kind="topup_receipt",
        title={"vi": "Nạp tiền thành công", "en": "Top-up received"},
        body={
            "vi": f"Bạn đã nạp {amount} vào tài khoản chính.",
            "en": f"{amount} was added to your main account.",
        },
        deep_link="mymobifone://topups",
        data={"topup_id": event.data.topup_id},
    )


def low_balance(event: BalanceChanged, rules: dict[str, Any]) -> Notice | None:
    """Once, when a debit takes the main balance from at or above the threshold to below it."""
    d = event.data
    threshold = int(rules["low_balance_vnd"])
    if d.account != "main" or d.unit != "vnd" or d.delta >= 0:
        return None
    if not (d.balance_after < threshold <= d.balance_after - d.delta):
        return None
    left = vnd(d.balance_after)
    return Notice(
        kind="low_balance",
        title={"vi": "Tài khoản sắp hết", "en": "Balance running low"},
        body={
            "vi": f"Tài khoản chính còn {left}. Nạp thêm để không bị gián đoạn.",
            "en": f"Your main account has {left} left. Top up to stay connected.",
        },
        deep_link="mymobifone://topup",
    )


def points_received(event: PointsTransferred, _: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        kind="points_received",
        title={"vi": "Bạn được tặng điểm", "en": "Points received"},
        body={
            "vi": f"Bạn nhận {d.points} điểm Kết Nối Dài Lâu; số dư {d.recipient_balance_after} điểm.",
            "en": f"You received {d.points} loyalty points; balance {d.recipient_balance_after}.",
        },
        deep_link="mymobifone://loyalty",
        data={"transfer_id": d.transfer_id},
    )


def tier_changed(event: TierChanged, _: dict[str, Any]) -> Notice:
    tier = event.data.to_tier
    return Notice(
        kind="tier_changed",
        title={"vi": "Hạng hội viên mới", "en": "New membership tier"},
        body={"vi": f"Hạng hội viên của bạn nay là {tier}.", "en": f"Your membership tier is now {tier}."},
        deep_link="mymobifone://loyalty",
    )


def feedback_answered(event: FeedbackAnswered, _: dict[str, Any]) -> Notice:
    return Notice(
        kind="feedback_answered",
        title={"vi": "Góp ý của bạn đã được trả lời", "en": "Your feedback was answered"},
        body={"vi": "Xem câu trả lời trong ứng dụng.", "en": "Open the app to read the answer."},
        deep_link="mymobifone://support/feedback",
    )


def vas_needs_confirmation(event: VasSubscribed, _: dict[str, Any]) -> Notice | None:
    """A subscription waiting for consent (e.g. started from a web page): the subscriber
    confirms or ignores it in the app. One that needs none is told by its charge."""
    d = event.data
    if not d.needs_confirmation:
        return None
    price = vnd(d.price_vnd)
    return Notice(
        kind="vas_confirm",
        title={"vi": f"Xác nhận đăng ký {d.code}?", "en": f"Confirm the {d.code} subscription?"},
        body={
            "vi": f"Có yêu cầu đăng ký {d.code} ({price}/{d.period_days} ngày). Bỏ qua nếu không phải bạn.",
            "en": f"A {d.code} subscription ({price} per {d.period_days} days) was requested. "
            "Ignore it if it was not you.",
        },
        deep_link=f"mymobifone://vas/subscriptions/{d.subscription_id}",
        data={"subscription_id": d.subscription_id},
    )


def vas_cancelled(event: VasCancelled, _: dict[str, Any]) -> Notice:
    d = event.data
    refund = f" Hoàn {vnd(d.refund_vnd)}." if d.refund_vnd else ""
    refund_en = f" {vnd(d.refund_vnd)} refunded." if d.refund_vnd else ""
    return Notice(
        kind="vas_cancelled",
        title={"vi": f"Đã hủy {d.code}", "en": f"{d.code} cancelled"},
        body={
            "vi": f"Dịch vụ {d.code} sẽ không bị tính cước nữa.{refund}",
            "en": f"No more charges for {d.code}.{refund_en}",
        },
        deep_link="mymobifone://vas",
    )


def vas_charge_failed(event: VasChargeFailed, _: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        kind="vas_charge_failed",
        title={"vi": f"Chưa gia hạn được {d.code}", "en": f"{d.code} could not be renewed"},
        body={
            "vi": f"Không trừ được {vnd(d.amount_vnd)} cho {d.code}. Nạp thêm tiền để tiếp tục.",
            "en": f"We could not charge {vnd(d.amount_vnd)} for {d.code}. Top up to keep it.",
        },
        deep_link="mymobifone://topup",
    )


def vas_renewal_due(event: VasRenewalDue, _: dict[str, Any]) -> Notice:
    d = event.data
    when = d.due_at.astimezone(VIETNAM).strftime("%d/%m")  # the subscriber's day, not UTC's
    return Notice(
        kind="vas_renewal_due",
        title={"vi": f"{d.code} sắp gia hạn", "en": f"{d.code} renews soon"},
        body={
            "vi": f"{d.name or d.code} gia hạn ngày {when} với giá {vnd(d.amount_vnd)}. "
            "Gia hạn, bỏ qua kỳ này hoặc hủy.",
            "en": f"{d.name or d.code} renews on {when} for {vnd(d.amount_vnd)}. "
            "Renew, skip this time or cancel.",
        },
        deep_link=f"mymobifone://vas/subscriptions/{d.subscription_id}",
        data={"subscription_id": d.subscription_id, "actions": ",".join(d.actions)},
    )


def data_pack_purchased(event: DataPackPurchased, _: dict[str, Any]) -> Notice:
    d = event.data
    gb = f"{d.quota_kb / 1_048_576:.1f} GB"
    return Notice(
        kind="data_pack_receipt",
        title={"vi": f"Đã kích hoạt gói {d.code}", "en": f"{d.code} data pack active"},
        body={
            "vi": f"Bạn có thêm {gb} data ({vnd(d.amount_vnd)}).",
            "en": f"{gb} of data added ({vnd(d.amount_vnd)}).",
        },
        deep_link="mymobifone://balances",
    )


def ecode_issued(event: ECodeIssued, _: dict[str, Any]) -> Notice:
    d = event.data
    until = d.valid_to.strftime("%d/%m/%Y")
    return Notice(
        kind="ecode_issued",
        title={"vi": f"E-code {d.partner}", "en": f"{d.partner} E-code"},
        body={
            "vi": f"Mã ưu đãi của bạn dùng được đến {until}.",
            "en": f"Your offer code is valid until {until}.",
        },
        deep_link="mymobifone://loyalty/ecodes",
        data={"offer_id": d.offer_id},
    )


def points_expired(event: PointsExpired, _: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        kind="points_expired",
        title={"vi": "Điểm đã hết hạn", "en": "Points expired"},
        body={
            "vi": f"{d.points} điểm đã hết hạn; còn {d.balance_after} điểm.",
            "en": f"{d.points} points expired; {d.balance_after} left.",
        },
        deep_link="mymobifone://loyalty",
    )


def vas_renewed(event: VasRenewed, _: dict[str, Any]) -> Notice:
    d = event.data
    until = d.period_end.astimezone(VIETNAM).strftime("%d/%m/%Y")
    return Notice(
        kind="vas_renewed",
        title={"vi": f"Đã gia hạn {d.code}", "en": f"{d.code} renewed"},
        body={"vi": f"{d.code} được gia hạn đến {until}.", "en": f"{d.code} now runs until {until}."},
        deep_link=f"mymobifone://vas/subscriptions/{d.subscription_id}",
    )


def redemption_granted(event: RedemptionGranted, _: dict[str, Any]) -> Notice:
    d = event.data
    what = d.description or d.redemption_id
    return Notice(
        kind="redemption_granted",
        title={"vi": "Đổi điểm thành công", "en": "Points redeemed"},
        body={"vi": f"Bạn đã nhận: {what}.", "en": f"You received: {what}."},
        deep_link="mymobifone://loyalty/history",
        data={"redemption_id": d.redemption_id},
    )


Renderer = Callable[[Any, dict[str, Any]], Notice | None]
RENDERERS: dict[type[AnyEvent], Renderer] = {
    TopupRecorded: topup_receipt,
    BalanceChanged: low_balance,
    PointsTransferred: points_received,
    TierChanged: tier_changed,
    FeedbackAnswered: feedback_answered,
    VasSubscribed: vas_needs_confirmation,
    VasCancelled: vas_cancelled,
    VasChargeFailed: vas_charge_failed,
    VasRenewalDue: vas_renewal_due,
    DataPackPurchased: data_pack_purchased,
    ECodeIssued: ecode_issued,
    PointsExpired: points_expired,
    VasRenewed: vas_renewed,
    RedemptionGranted: redemption_granted,
}


def notice_for(event: AnyEvent, rules: dict[str, Any]) -> Notice | None:
    render = RENDERERS.get(type(event))
    return render(event, rules) if render else None
