"""Configuration from PAYPROV_* environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYPROV_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8192, ge=0, le=65535)
    log_level: str = "INFO"

    # The one merchant terminal this sandbox serves (the self-care platform).
    tmn_code: str = "MYMOBI01"
    hash_secret: SecretStr = SecretStr("sandbox-hash-secret-change-me")

    # Where notifications go. VNPay registers one IPN URL per terminal, not per payment.
    ipn_url: str = "http://127.0.0.1:8080/api/v1/payments/provider/ipn"
    ipn_method: Literal["POST", "GET"] = "POST"
    ipn_timeout_s: float = Field(default=5.0, gt=0)
    # Pause before each retry; attempts = 1 + len(delays). "0.2,1,3" or a JSON list.
    ipn_retry_delays_s: Annotated[list[float], NoDecode] = [0.2, 1.0, 3.0, 10.0, 30.0, 60.0]
    # Hold the browser's redirect until the first IPN attempt is answered, so the merchant's
    # return page usually finds the result already recorded (VNPay sends both at about the
    # same time; set false to let the redirect race the IPN).
    redirect_waits_for_ipn: bool = True

    # Optional JSON-lines journal of transactions and notification attempts.
    record_path: Path | None = None
    # vnp_RequestId values of querydr calls are remembered this long to refuse duplicates (94).
    query_request_id_ttl_s: float = Field(default=900.0, gt=0)

    @field_validator("ipn_retry_delays_s", mode="before")
    @classmethod
    def _split_delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("ipn_retry_delays_s")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays must be >= 0")
        return value

    @property
    def secret(self) -> str:
        return self.hash_secret.get_secret_value()
