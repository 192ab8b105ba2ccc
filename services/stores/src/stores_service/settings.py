from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import model_validator

from servicekit.settings import KitSettings


class StoresSettings(KitSettings):
    service_name: str = "stores-service"
    http_port: int = 8106

    # The operator's hotlines: a JSON file (hotlines.json in this package unless given).
    hotlines_file: Path | None = None

    # Nearest-store lookups.
    nearest_default_radius_km: float = 50.0
    nearest_max_radius_km: float = 1000.0
    # Every replica re-reads the active catalogue pointer from the store this often, in case
    # Redis lost the key it checks on each request (restart, failover).
    catalogue_pointer_check_seconds: float = 30.0
    catalogue_snapshot_ttl_seconds: int = 7 * 24 * 3600
    # A replica looks up the active catalogue version in Redis at most this often: after an
    # import elsewhere it serves the previous catalogue for at most this long.
    catalogue_recheck_seconds: float = 0.1

    # Feedback: text limits after sanitising, and per-subscriber rate limits.
    feedback_min_chars: int = 5
    feedback_max_chars: int = 2000
    feedback_per_hour: int = 5
    feedback_per_day: int = 20

    @model_validator(mode="after")
    def _limits_make_sense(self) -> Self:
        if not 0 < self.feedback_min_chars <= self.feedback_max_chars <= 4000:
            raise ValueError("need 0 < FEEDBACK_MIN_CHARS <= FEEDBACK_MAX_CHARS <= 4000 (the event's limit)")
        if not 0 < self.feedback_per_hour <= self.feedback_per_day:
            raise ValueError("need 0 < FEEDBACK_PER_HOUR <= FEEDBACK_PER_DAY")
        if not 0 < self.nearest_default_radius_km <= self.nearest_max_radius_km:
            raise ValueError("need 0 < NEAREST_DEFAULT_RADIUS_KM <= NEAREST_MAX_RADIUS_KM")
        return self
