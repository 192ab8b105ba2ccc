"""Sandbox settings, from SMSC_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# SMPP v3.4 (4.1.1) carries the password as a C-octet string of at most 9 octets: 8 characters.
_MAX_PASSWORD_CHARS = 8
_MAX_SYSTEM_ID_CHARS = 15


class SmscSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSC_", extra="ignore")

    smpp_host: str = "127.0.0.1"
    smpp_port: int = Field(default=2775, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8191, ge=0, le=65535)
    system_id: str = "mymobifone"
    password: SecretStr = SecretStr("smsc-pwd")
    # Append each accepted message as one JSON line (the demo's audit trail).
    record_file: Path | None = None
    # submit_sm PDUs accepted per second over all binds; 0 = unlimited.
    throttle_per_second: float = Field(default=0, ge=0)
    # Send enquire_link to bound ESMEs this often (seconds); 0 = never. A real SMSC does, and an
    # ESME must answer it.
    enquire_link_interval: float = Field(default=0, ge=0)
    # Messages kept in memory for the HTTP API; the oldest are forgotten first.
    max_messages: int = Field(default=10_000, ge=1)
    log_level: str = "INFO"

    @field_validator("password")
    @classmethod
    def _password_fits_smpp(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret.isascii() or len(secret) > _MAX_PASSWORD_CHARS:
            raise ValueError(f"SMPP v3.4 passwords are at most {_MAX_PASSWORD_CHARS} ASCII characters")
        return value

    @field_validator("system_id")
    @classmethod
    def _system_id_fits_smpp(cls, value: str) -> str:
        if not value.isascii() or not 0 < len(value) <= _MAX_SYSTEM_ID_CHARS:
            raise ValueError(f"SMPP v3.4 system ids are 1 to {_MAX_SYSTEM_ID_CHARS} ASCII characters")
        return value
