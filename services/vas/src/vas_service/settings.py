from __future__ import annotations

from pydantic import Field, SecretStr

from servicekit.settings import KitSettings


class VasSettings(KitSettings):
    service_name: str = "vas-service"
    http_port: int = 8102

    # A subscription waiting for in-app consent expires after this (nothing is ever charged).
    confirm_window_minutes: int = 15
    # A subscription started outside the app (SMS, partner web page) and cancelled within this
    # many hours of its start gets its first charge back.
    refund_window_hours: int = 48
    # VasRenewalDue goes out this long before an auto-renewal; a renewal can be skipped from then.
    renewal_notice_hours: int = 24
    # The renewal pass (one replica at a time, a Redis lease).
    renewal_interval_seconds: float = 60.0
    renewal_chunk: int = 2000  # schedule entries claimed, appended and published together
    # How far back the very first pass looks for due renewals (later passes continue from
    # where the last one stopped, however long ago: a pass after a day down scans that day).
    renewal_first_lookback_minutes: int = 10
    # Use cases left half done (a crash, an outage) longer than this are completed by the resume pass.
    resume_after_seconds: float = 20.0
    resume_every_seconds: float = 5.0

    # Content providers' own keys (JSON {"vmusic": "..."}); locally `local-provider-key-<id>`.
    content_provider_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Outside requests (content providers, partner pages) and the confirmation pushes they cause.
    provider_requests_per_minute: int = 600
    number_outside_requests_per_day: int = 10
    provider_number_requests_per_day: int = 3
    confirmations_per_number_per_day: int = 3
    confirmations_per_provider_per_day: int = 10_000
    # New subscription requests in the app, per subscriber (each may push a consent prompt).
    app_requests_per_hour: int = 20

    # Subscriber lookups (billing type) at the account service's internal API.
    account_internal_url: str = "http://127.0.0.1:8101"
    # Loyalty's redemption catalogue, checked against a catalogue import (its VAS rewards).
    loyalty_url: str = "http://127.0.0.1:8104"

    def provider_key(self, provider: str) -> str:
        configured = self.content_provider_keys.get(provider)
        if configured is not None:
            return configured.get_secret_value()
        return f"local-provider-key-{provider}" if self.environment == "local" else ""
