"""Settings every service shares, read from the environment (12-factor)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KitSettings(BaseSettings):
    """Subclass per service: `class AccountSettings(KitSettings)` adds its own fields."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    service_name: str = Field(description="e.g. account-service; also the consumer group prefix")
    environment: str = "local"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Idle keep-alive connections are kept longer than the gateway keeps them in its pool
    # (GATEWAY_UPSTREAM_KEEPALIVE_TIMEOUT, 60 s), so it is always the gateway that closes one
    # and never reuses a connection the service is closing.
    http_keepalive_seconds: int = 75

    kafka_bootstrap: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_db: str = ""  # defaults to the service name with '_' for '-'
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"

    # Access tokens are signed by the account service (Ed25519); every service verifies.
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "mymobifone-account"
    jwt_audience: str = "mymobifone-app"
    # The gateway proves a request came through it (header enrichment is trusted only then).
    gateway_key: SecretStr = SecretStr("local-gateway-key")
    # Service-to-service calls on /internal/... (never routed by the gateway).
    internal_key: SecretStr = SecretStr("local-internal-key")

    consumer_max_records: int = 500
    # Members of each consumer group in one process (each gets its share of the partitions;
    # topics have 3). More processes (replicas) share them the same way.
    consumer_instances: int = 3
    consumer_batch_timeout_ms: int = 50
    # aiokafka keeps one fetch in flight per broker and leaves out partitions that still have
    # buffered records; a partition drained meanwhile waits for that fetch to come back, which
    # on a quiet topic takes the whole fetch_max_wait_ms (aiokafka's default 500 ms). Measured
    # in bench/payment_flow.py: a third of the events waited 0.5-1 s at the default.
    consumer_fetch_max_wait_ms: int = 50
    # Concurrent single-document writes; see servicekit.mongo for why not bulk on FerretDB.
    store_write_concurrency: int = 8
    inbox_ttl_seconds: int = 2 * 24 * 3600

    @property
    def database_name(self) -> str:
        return self.mongodb_db or self.service_name.replace("-", "_")
