from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import SecretStr, model_validator

from servicekit.settings import KitSettings


class NotifySettings(KitSettings):
    service_name: str = "notify-service"
    http_port: int = 8105

    # Push providers. Locally both are the push sandbox (PUSH_BASE_URL); in production
    # https://fcm.googleapis.com, https://oauth2.googleapis.com/token, https://api.push.apple.com.
    push_base_url: str = "http://127.0.0.1:8193"
    fcm_base_url: str = ""  # default: push_base_url
    fcm_token_uri: str = ""  # default: <push_base_url>/token
    fcm_project_id: str = "mymobifone-local"
    # A Google service account JSON (client_email, private_key, private_key_id): a file, or
    # its content (FCM_CREDENTIALS, e.g. from a Kubernetes Secret).
    fcm_credentials_file: Path | None = None
    fcm_credentials: SecretStr = SecretStr("")
    apns_base_url: str = ""  # default: push_base_url
    apns_team_id: str = "LOCALTEAM1"
    apns_key_id: str = "LOCALKEY01"
    apns_key_file: Path | None = None  # the .p8 (EC P-256) token-auth key, PEM
    apns_key: SecretStr = SecretStr("")  # or its content (APNS_KEY)
    apns_topic: str = "vn.mobifone.mymobifone"

    # Sending: concurrent requests (HTTP/2 streams) to each provider, tries per push.
    push_concurrency: int = 256
    push_max_attempts: int = 5
    push_timeout_seconds: float = 10.0

    # Fan-out: devices read and checkpointed per chunk; campaigns fanned out at once.
    fanout_chunk: int = 500
    fanout_campaigns_at_once: int = 2
    fanout_tick_seconds: float = 1.0
    # A fan-out owner that stops renewing its liveness key for this long is presumed dead
    # and its unfinished units are taken over.
    fanout_owner_ttl_seconds: int = 10
    # SIGTERM: chunks in flight finish and are checkpointed within this (below the pod's
    # terminationGracePeriodSeconds, 30 s by default), so a deploy resends nothing.
    fanout_drain_seconds: float = 20.0

    inbox_cache_seconds: float = 2.0
    low_balance_vnd: int = 10_000  # a debit taking the main balance below this alerts once
    # A receipt or alert older than this is no longer news (a replay of the topics pushes
    # nothing); renewal notices are news until the renewal, consent requests for a day
    # (domain.notices.news_until).
    receipt_max_age_seconds: int = 24 * 3600
    max_devices_per_subscriber: int = 10
    demo_devices: int = 3

    @model_validator(mode="after")
    def _real_credentials_outside_local(self) -> Self:
        """Locally the adapters make throw-away keys (the sandbox does not verify signatures);
        anywhere else the real provider credentials must be configured."""
        if self.environment != "local":
            missing = [
                name
                for name, path, inline in (
                    ("FCM_CREDENTIALS(_FILE)", self.fcm_credentials_file, self.fcm_credentials),
                    ("APNS_KEY(_FILE)", self.apns_key_file, self.apns_key),
                )
                if not inline.get_secret_value() and (path is None or not path.is_file())
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} must give the provider keys outside local")
            if "127.0.0.1" in self.push_base_url and not (self.fcm_base_url and self.apns_base_url):
                raise ValueError("FCM_BASE_URL and APNS_BASE_URL must name the real providers outside local")
        return self

    @property
    def fcm_url(self) -> str:
        return self.fcm_base_url or self.push_base_url

    @property
    def fcm_token_url(self) -> str:
        return self.fcm_token_uri or f"{self.push_base_url}/token"

    @property
    def apns_url(self) -> str:
        return self.apns_base_url or self.push_base_url
