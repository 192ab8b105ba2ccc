from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator

from mobi_contracts import ConsumerGroup
from mobi_contracts.topics import ACCOUNT_LEDGER_GROUP, ACCOUNT_USAGE_GROUP
from servicekit.settings import KitSettings

# The ledger's lanes by the name LEDGER_LANES gives them.
LEDGER_LANES: dict[str, ConsumerGroup] = {"ledger": ACCOUNT_LEDGER_GROUP, "usage": ACCOUNT_USAGE_GROUP}


class AccountSettings(KitSettings):
    service_name: str = "account-service"
    http_port: int = 8101

    jwt_private_key_file: Path | None = None
    access_token_ttl_seconds: int = 600
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # Server secret mixed into stored OTP digests (a Redis dump must not reveal live codes).
    otp_pepper: SecretStr = SecretStr("local-otp-pepper-change-me")
    SHORT_SECRETS = frozenset({"smsc_password"})  # SMPP v3.4 passwords have at most 8 characters

    # SMS centre (SMPP v3.4); the local sandbox listens here.
    smsc_host: str = "127.0.0.1"
    smsc_port: int = 2775
    smsc_system_id: str = "mymobifone"
    smsc_password: SecretStr = SecretStr("smsc-pwd")  # SMPP v3.4: at most 8 characters
    sms_sender: str = "MobiFone"

    # The ledger lanes this process consumes (contracts: ACCOUNT_LEDGER_GROUP "ledger",
    # ACCOUNT_USAGE_GROUP "usage"), comma-separated. Both by default; an operator runs the usage
    # lane (the charging feed's volume) as its own deployment so that its CPU never delays a
    # top-up's decision (LEDGER_LANES=ledger beside LEDGER_LANES=usage).
    ledger_lanes: str = "ledger,usage"

    demo_subscribers: int = 3000
    # Balances read from Redis (kept current by the ledger consumer; see servicekit.cache).
    balance_cache_ttl_seconds: int = 6 * 3600
    # Balance snapshots follow the journal lazily (domain.snapshots): one is written when it is
    # this many decisions behind, or has been behind this long; at most this many per batch.
    snapshot_every: int = 50
    snapshot_seconds: float = 30.0
    snapshot_budget: int = 50
    # The money invariants (audit.py) are checked every this often; they read the payment
    # service's database, read-only.
    audit_interval_seconds: float = 300.0
    payment_database: str = "payment_service"

    @field_validator("ledger_lanes")
    @classmethod
    def _known_lanes(cls, value: str) -> str:
        lanes = {lane.strip() for lane in value.split(",") if lane.strip()}
        if not lanes or lanes - LEDGER_LANES.keys():
            raise ValueError(f"LEDGER_LANES: one or more of {sorted(LEDGER_LANES)}, comma-separated")
        return ",".join(sorted(lanes))

    @property
    def lanes(self) -> list[ConsumerGroup]:
        """The consumer groups of the lanes this process runs."""
        return [LEDGER_LANES[lane] for lane in self.ledger_lanes.split(",")]
