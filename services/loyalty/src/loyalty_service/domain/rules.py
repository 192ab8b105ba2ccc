"""The programme's rules (configuration in settings): earning, tiers, transfers, eligibility."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from servicekit.vntime import day_of, month_of

from .wallet import TIERS, Refused, Tier, Wallet

# Points earned in the last 12 months needed for each tier, and its earning rate (percent).
TIER_THRESHOLDS: dict[Tier, int] = {"member": 0, "silver": 2_000, "gold": 10_000, "diamond": 30_000}
TIER_RATE_PERCENT: dict[Tier, int] = {"member": 100, "silver": 120, "gold": 150, "diamond": 200}
PRIVILEGES: dict[Tier, list[str]] = {
    "member": ["Tích điểm mọi giao dịch nạp tiền và thanh toán cước", "Ưu đãi đối tác Kết Nối Dài Lâu"],
    "silver": ["Tích điểm x1.2", "Ưu đãi đối tác", "Quà sinh nhật", "Thẻ hội viên"],
    "gold": ["Tích điểm x1.5", "Ưu đãi đối tác", "Quà sinh nhật", "Thẻ hội viên", "Ưu tiên tại cửa hàng"],
    "diamond": [
        "Tích điểm x2",
        "Ưu đãi đối tác",
        "Quà sinh nhật",
        "Thẻ hội viên",
        "Ưu tiên tại cửa hàng",
        "Phòng chờ sân bay (2 lượt/năm)",
        "Tổng đài viên riêng",
    ],
}


def tier_for(qualifying: int) -> Tier:
    return [t for t in TIERS if qualifying >= TIER_THRESHOLDS[t]][-1]


def tier_progress(wallet: Wallet, now: datetime) -> dict[str, Any]:
    qualifying = wallet.qualifying(now)
    higher = [t for t in TIERS if TIER_THRESHOLDS[t] > qualifying]
    nxt = higher[0] if higher else None
    return {
        "qualifying_points": qualifying,
        "next_tier": nxt,
        "points_to_next_tier": TIER_THRESHOLDS[nxt] - qualifying if nxt else 0,
    }


@dataclass(frozen=True)
class EarningRules:
    vnd_per_point: int = 1_000
    max_points_per_event: int = 5_000
    max_per_month: int = 50_000
    valid_months: int = 12
    tenure_points_per_year: int = 10
    tenure_points_max: int = 100

    def for_payment(self, wallet: Wallet, amount_vnd: int, now: datetime) -> int:
        """Points for a payment: rate by the tier, capped per event and by what is left of the
        month's cap (0: nothing to earn)."""
        base = amount_vnd // self.vnd_per_point
        points = min(base * TIER_RATE_PERCENT[wallet.tier] // 100, self.max_points_per_event)
        left_this_month = self.max_per_month - wallet.earned.get(month_of(now), 0)
        return max(0, min(points, left_this_month))

    def for_tenure(self, since: datetime | None, now: datetime) -> int:
        """Monthly points for loyalty to the network: per full year since activation."""
        if since is None:
            return 0
        years = (now - since).days // 365
        return min(years * self.tenure_points_per_year, self.tenure_points_max)


@dataclass(frozen=True)
class TransferRules:
    min_points: int = 10
    max_points: int = 50_000
    daily_max: int = 100_000
    min_remaining: int = 0

    def check(self, wallet: Wallet, points: int, now: datetime) -> None:
        if points < self.min_points or points > self.max_points:
            raise Refused(
                "transfer_amount_out_of_range",
                f"a transfer is {self.min_points}-{self.max_points} points",
                min_points=self.min_points,
                max_points=self.max_points,
            )
        sent_today = wallet.sent.get(day_of(now), 0)
        if sent_today + points > self.daily_max:
            raise Refused(
                "daily_transfer_limit",
                f"at most {self.daily_max} points a day; {self.daily_max - sent_today} left today",
                left_today=self.daily_max - sent_today,
            )
        if wallet.points - points < self.min_remaining:
            raise Refused(
                "insufficient_points",
                f"{points} points asked, {max(0, wallet.points - self.min_remaining)} can be sent "
                f"(keep {self.min_remaining})",
                available=wallet.points,
            )


@dataclass(frozen=True)
class Eligibility:
    min_tenure_days: int = 30
    require_known_tenure: bool = False

    def check(self, subscriber: dict[str, Any] | None, now: datetime) -> datetime | None:
        """The activation date (if the directory knows it) of a subscriber who may join."""
        if subscriber is None:
            raise Refused("not_a_subscriber", "this number is not a MobiFone subscription")
        if subscriber.get("status", "active") != "active":
            raise Refused("not_eligible", "the subscription is not active")
        raw = subscriber.get("since")
        since = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
        if since is None:
            if self.require_known_tenure:
                raise Refused("not_eligible", "the subscription's activation date is unknown")
            return None
        eligible_on = since + timedelta(days=self.min_tenure_days)
        if now < eligible_on:
            raise Refused(
                "not_eligible",
                f"members need {self.min_tenure_days} days on the network; "
                f"eligible from {eligible_on.date()}",
                eligible_from=eligible_on.isoformat(),
            )
        return since


@dataclass(frozen=True)
class CatalogueItem:
    code: str
    title: str
    points: int
    kind: str  # airtime | data | vas
    reward: dict[str, Any]


# What points buy. Data and airtime are granted by the account service, VAS by the VAS service.
CATALOGUE: dict[str, CatalogueItem] = {
    item.code: item
    for item in (
        CatalogueItem("AIRTIME-10K", "10.000đ tài khoản chính", 100, "airtime", {"amount_vnd": 10_000}),
        CatalogueItem("AIRTIME-50K", "50.000đ tài khoản chính", 480, "airtime", {"amount_vnd": 50_000}),
        CatalogueItem(
            "DATA-1GB-1D", "1 GB data, 1 ngày", 50, "data", {"data_kb": 1_048_576, "validity_days": 1}
        ),
        CatalogueItem(
            "DATA-2GB-7D", "2 GB data, 7 ngày", 150, "data", {"data_kb": 2_097_152, "validity_days": 7}
        ),
        CatalogueItem(
            "VAS-MCA-30D", "MCA (báo cuộc gọi nhỡ), 30 ngày", 60, "vas", {"vas_code": "MCA", "vas_days": 30}
        ),
        CatalogueItem(
            "VAS-FUNRING-30D", "FunRing nhạc chờ, 30 ngày", 90, "vas", {"vas_code": "FUNRING", "vas_days": 30}
        ),
    )
}
