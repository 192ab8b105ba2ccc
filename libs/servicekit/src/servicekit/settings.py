"""Settings every service shares, read from the environment (12-factor)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

if TYPE_CHECKING:
    from .kafka.access import KafkaAccess

MIN_SECRET_BYTES = 32
# Markers of the laptop-only values shipped in code, compose and the chart's examples.
_DEFAULT_MARKERS = ("change-me", "changeme", "local-", "sandbox-", "compose-", "example", "default")


class KitSettings(BaseSettings):
    """Subclass per service: `class AccountSettings(KitSettings)` adds its own fields."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Secrets as files: with SECRETS_DIR set (a mounted Secret volume in a cluster), a file
        named after a field holds its value (`mongodb_url`, `gateway_key`, `otp_pepper`) and a
        directory named after a dict field one file per entry (`internal_caller_keys/ops`), so
        no secret travels as an environment variable (those are visible in the pod spec, the
        process table and crash dumps). An environment variable of the same name still wins."""
        secrets_dir = os.environ.get("SECRETS_DIR", "")
        if not secrets_dir:
            return (init_settings, env_settings, dotenv_settings, file_secret_settings)
        files = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=secrets_dir,
            secrets_dir_missing="error",
            secrets_nested_subdir=True,
        )
        return (init_settings, env_settings, dotenv_settings, files)

    service_name: str = Field(description="e.g. account-service; also the consumer group prefix")
    environment: str = "local"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Idle keep-alive connections are kept longer than the gateway keeps them in its pool
    # (GATEWAY_UPSTREAM_KEEPALIVE_TIMEOUT, 60 s), so it is always the gateway that closes one
    # and never reuses a connection the service is closing.
    http_keepalive_seconds: int = 75

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The bus authenticates every client (SASL/SCRAM-SHA-512 over TLS) and lets a principal
    # write only the topics it produces (servicekit.kafka.acls). The service is its own
    # principal (`kafka_username`, default its name); the password and the broker's CA come
    # from files mounted from Secrets in a cluster (a Strimzi KafkaUser's `password`, the
    # cluster CA's `ca.crt`). Local profile: unset means the passwords `make up` generated
    # (KAFKA_SECRETS_DIR). PLAINTEXT is for a throwaway broker only (the auth benchmark).
    kafka_security_protocol: Literal["SASL_SSL", "PLAINTEXT"] = "SASL_SSL"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_password_file: Path | None = None
    kafka_ca_file: Path | None = None
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_db: str = ""  # defaults to the service name with '_' for '-'
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"

    # Access tokens are signed by the account service (Ed25519); every service verifies.
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "mymobifone-account"
    jwt_audience: str = "mymobifone-app"
    # The gateway proves a request came through it (header enrichment and the client address
    # are trusted only then). Each service has its own key (GATEWAY_KEY_<SERVICE> at the
    # gateway), so a service that leaks its key cannot speak as the gateway to another one:
    # only the account service's key lets X-MSISDN log anyone in. Local profile: empty means
    # `local-gateway-key-<service>` (own_gateway_key).
    gateway_key: SecretStr = SecretStr("")
    # Service-to-service calls on /internal/... (never routed by the gateway). Every caller has
    # its own key: `internal_key` is this service's, sent with `X-Internal-Caller: <service_name>`
    # on its calls; `internal_caller_keys` (JSON {"payment-service": "...", "ops": "..."}) are the
    # keys of the callers this service accepts, and each internal route names which of them
    # may call it (`servicekit.http.internal_callers`). Empty in the local profile: every caller's
    # key is then `local-internal-key-<caller>` (servicekit.internal_keys).
    internal_key: SecretStr = SecretStr("")
    internal_caller_keys: dict[str, SecretStr] = Field(default_factory=dict)

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
    # Dependencies (store, Redis, Kafka) are checked this often in the background as well as
    # by GET /ready, so `service_ready` and `dependency_ready` are current without a prober.
    readiness_watch_seconds: float = 5.0

    # Graceful shutdown (servicekit.shutdown), after SIGTERM. The stages and their bounds:
    # /ready answers 503 at once while requests are still served for `shutdown_delay_seconds`;
    # then the listener closes and in-flight requests get `shutdown_http_seconds`; meanwhile
    # (from the signal on) each consumer finishes its batch, commits it and leaves its group
    # within `shutdown_batch_seconds`; then the outboxes are flushed and the shutdown hooks run
    # within `shutdown_flush_seconds`. The chart's terminationGracePeriodSeconds covers its
    # preStop sleep plus `shutdown_budget_seconds()` (tests/deploy/test_helm.py checks it).
    shutdown_delay_seconds: float = 2.0
    shutdown_http_seconds: float = 10.0
    shutdown_batch_seconds: float = 10.0
    shutdown_flush_seconds: float = 5.0

    # Secrets a protocol keeps short (e.g. SMPP passwords: at most 8 characters); they are still
    # refused when left at a default.
    SHORT_SECRETS: ClassVar[frozenset[str]] = frozenset()
    REQUIRED_SECRETS: ClassVar[frozenset[str]] = frozenset({"gateway_key"})

    @model_validator(mode="after")
    def _no_default_secret_outside_local(self) -> Self:
        """Outside the local profile a service refuses to start with a secret left at its
        laptop default, missing, or shorter than 32 bytes: with the provider's hash secret at
        its default anyone could sign a payment notification."""
        if self.environment == "local":
            return self
        problems = []
        for name, value in self._secrets():
            text = value.get_secret_value()
            default = type(self).model_fields[name.split("[")[0]].default
            shipped = default.get_secret_value() if isinstance(default, SecretStr) else ""
            if not text:
                # Optional secrets are empty by default (e.g. the key for calling others).
                if shipped or name in self.REQUIRED_SECRETS:
                    problems.append(f"{name} is not set")
            elif text == shipped or any(marker in text.lower() for marker in _DEFAULT_MARKERS):
                problems.append(f"{name} is a known default")
            elif len(text.encode()) < MIN_SECRET_BYTES and name not in self.SHORT_SECRETS:
                problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
        problems += self._kafka_problems()
        if problems:
            raise ValueError(f"refusing to start in environment {self.environment!r}: " + "; ".join(problems))
        return self

    def _kafka_problems(self) -> list[str]:
        if self.kafka_security_protocol != "SASL_SSL":
            return ["kafka_security_protocol must be SASL_SSL (the bus authenticates every client)"]
        if not (self.kafka_password.get_secret_value() or self.kafka_password_file):
            return ["kafka_password (or kafka_password_file) is not set"]
        return []

    @property
    def kafka_access(self) -> KafkaAccess:
        """How this service reaches Kafka, as its own principal."""
        from .kafka.access import KafkaAccess

        principal = self.kafka_username or self.service_name
        if self.kafka_security_protocol == "PLAINTEXT":
            return KafkaAccess(self.kafka_bootstrap, principal, protocol="PLAINTEXT")
        password = self.kafka_password.get_secret_value()
        if not password and self.kafka_password_file:
            password = self.kafka_password_file.read_text().strip()
        if not password:  # local profile (the validator refuses this elsewhere)
            return KafkaAccess.local(principal, self.kafka_bootstrap)
        return KafkaAccess(self.kafka_bootstrap, principal, password, self.kafka_ca_file)

    def _secrets(self) -> list[tuple[str, SecretStr]]:
        found: list[tuple[str, SecretStr]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                found.append((name, value))
            elif isinstance(value, dict):
                found += [(f"{name}[{k}]", v) for k, v in value.items() if isinstance(v, SecretStr)]
        return found

    @property
    def own_gateway_key(self) -> str:
        key = self.gateway_key.get_secret_value()
        return key or (f"local-gateway-key-{self.service_name}" if self.environment == "local" else "")

    @property
    def own_internal_key(self) -> str:
        from .internal_keys import local_key

        key = self.internal_key.get_secret_value()
        return key or (local_key(self.service_name) if self.environment == "local" else "")

    @property
    def accepted_internal_keys(self) -> dict[str, str]:
        from .internal_keys import local_keys

        if self.internal_caller_keys:
            return {caller: key.get_secret_value() for caller, key in self.internal_caller_keys.items()}
        return local_keys() if self.environment == "local" else {}

    @classmethod
    def shutdown_budget_seconds(cls) -> float:
        """The longest a service takes from SIGTERM to its exit with the default settings: the
        stages one after another (the consumers' stop overlaps the first two, counted anyway)."""
        fields = cls.model_fields
        stages = (
            "shutdown_delay_seconds",
            "shutdown_http_seconds",
            "shutdown_batch_seconds",
            "shutdown_flush_seconds",
        )
        return float(sum(fields[name].default for name in stages))

    @property
    def database_name(self) -> str:
        return self.mongodb_db or self.service_name.replace("-", "_")
