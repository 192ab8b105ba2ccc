from __future__ import annotations

from servicekit.settings import KitSettings


class VasSettings(KitSettings):
    service_name: str = "vas-service"
    http_port: int = 8102

    # A subscription waiting for in-app consent expires after this (nothing is ever charged).
    confirm_window_minutes: int = 15
    # A subscription started outside the app (SMS, partner web page) and cancelled within this
    # many hours of its start gets its first charge back.
    refund_window_hours: int = 48
    # VasRenewalDue goes out this long before an auto-renewal.
    renewal_notice_hours: int = 24
    # The renewal pass (one replica at a time, a Redis lease).
    renewal_interval_seconds: float = 60.0
    renewal_chunk: int = 2000  # schedule entries claimed, appended and published together
    # How far back the very first pass looks for due renewals (later passes continue from
    # where the last one stopped, however long ago: a pass after a day down scans that day).
    renewal_first_lookback_minutes: int = 10

    # Subscriber lookups (billing type) at the account service's internal API.
    account_internal_url: str = "http://127.0.0.1:8101"
