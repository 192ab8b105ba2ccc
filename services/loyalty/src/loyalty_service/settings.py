from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from servicekit.settings import KitSettings


class LoyaltySettings(KitSettings):
    # Enrolment calls the account service: outside local the kit refuses to start without
    # this service's own key (and, as for every secret, one shorter than 32 bytes).
    REQUIRED_SECRETS: ClassVar[frozenset[str]] = KitSettings.REQUIRED_SECRETS | {"internal_key"}

    service_name: str = "loyalty-service"
    http_port: int = 8104

    # Who may join: an active subscription at least this old (the account service's directory
    # says since when; a number it gives no date for is let in unless require_known_tenure).
    enroll_min_tenure_days: int = Field(default=30, ge=0)
    require_known_tenure: bool = False
    welcome_points: int = Field(default=0, ge=0)

    # Earning: points per VND paid, multiplied by the tier's rate; caps per event and month.
    vnd_per_point: int = Field(default=1_000, gt=0)
    max_points_per_event: int = Field(default=5_000, gt=0)
    max_earned_points_per_month: int = Field(default=50_000, gt=0)
    points_valid_months: int = Field(default=12, ge=1, le=60)
    tenure_points_per_year: int = Field(default=10, ge=0)  # granted monthly, per full year of tenure
    tenure_points_max: int = Field(default=100, ge=0)

    # Transfers between members.
    transfer_min_points: int = Field(default=10, gt=0)
    transfer_max_points: int = Field(default=50_000, gt=0)
    transfer_daily_max_points: int = Field(default=100_000, gt=0)
    transfer_min_remaining: int = Field(default=0, ge=0)

    # Wallet snapshots (the points ledger is the truth): written when this many entries behind,
    # or behind for this long, at most this many per consumer batch, most behind first.
    snapshot_every: int = Field(default=50, ge=1)
    snapshot_seconds: float = Field(default=30.0, gt=0)
    snapshot_budget: int = Field(default=50, ge=1)

    # The scheduled job (tier recompute, expiry, tenure points), one replica at a time.
    jobs_interval_seconds: float = 3600.0
    recovery_interval_seconds: float = 5.0

    # Enrolment looks the subscriber up at the account service's internal API.
    account_internal_url: str = "http://127.0.0.1:8101"

    @model_validator(mode="after")
    def _limits_consistent(self) -> LoyaltySettings:
        if self.transfer_min_points > self.transfer_max_points:
            raise ValueError("transfer_min_points is above transfer_max_points")
        return self
