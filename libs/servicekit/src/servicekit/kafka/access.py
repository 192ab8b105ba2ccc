"""How a process reaches Kafka, and as whom.

Every service, tool and test talks to the broker as its own principal (SASL/SCRAM-SHA-512
over TLS): the broker's ACLs, derived from the topic declarations in `mobi_contracts`
(`servicekit.kafka.acls`), let a principal write only the topics it produces and read only
what its consumer group consumes. `KafkaAccess` carries the bootstrap address, the
principal's name and password and the CA that signed the broker's certificate, and turns
them into the options of each client library the platform uses (FastStream, aiokafka,
librdkafka for the admin tool).

Local profile: `make up` generates the CA, the broker's certificate and one password per
principal into `.cache/secrets/kafka/` (`servicekit.kafka.credentials`); `KafkaAccess.local`
reads them. In a cluster the password and the CA come from Secrets (a Strimzi `KafkaUser`'s
`password`, the cluster CA's `ca.crt`), mounted as files (`KAFKA_PASSWORD_FILE`,
`KAFKA_CA_FILE`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from faststream.security import BaseSecurity, SASLScram512

Protocol = Literal["SASL_SSL", "PLAINTEXT"]
MECHANISM = "SCRAM-SHA-512"
DEFAULT_SECRETS_DIR = Path(".cache/secrets/kafka")


def local_secrets_dir() -> Path:
    """Where `make up` keeps the local broker's CA and every principal's password."""
    return Path(os.environ.get("KAFKA_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def password_path(secrets_dir: Path, principal: str) -> Path:
    return secrets_dir / "users" / principal


@dataclass(frozen=True)
class KafkaAccess:
    """The broker's address and one principal's credentials (PLAINTEXT: none)."""

    bootstrap: str
    principal: str
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    protocol: Protocol = "SASL_SSL"

    @classmethod
    def local(
        cls, principal: str, bootstrap: str | None = None, secrets_dir: Path | None = None
    ) -> KafkaAccess:
        """`principal` on the local platform's broker (its generated password and CA)."""
        secrets = secrets_dir or local_secrets_dir()
        address = bootstrap or os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
        if os.environ.get("KAFKA_SECURITY_PROTOCOL", "SASL_SSL") == "PLAINTEXT":
            return cls(address, principal, protocol="PLAINTEXT")
        path = password_path(secrets, principal)
        if not path.exists():
            raise FileNotFoundError(f"no Kafka password for {principal!r} in {secrets} (run `make up`)")
        return cls(address, principal, path.read_text().strip(), secrets / "ca.pem")

    @classmethod
    def from_environment(cls, principal: str, bootstrap: str | None = None) -> KafkaAccess:
        """A tool's access: `KAFKA_USERNAME`, `KAFKA_PASSWORD(_FILE)` and `KAFKA_CA_FILE` when
        they are set (a cluster's Secrets), else `principal` on the local platform."""
        env = os.environ
        password = env.get("KAFKA_PASSWORD") or (
            Path(env["KAFKA_PASSWORD_FILE"]).read_text().strip() if env.get("KAFKA_PASSWORD_FILE") else ""
        )
        if not password:
            return cls.local(principal, bootstrap)
        return cls(
            bootstrap or env.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            env.get("KAFKA_USERNAME") or principal,
            password,
            Path(env["KAFKA_CA_FILE"]) if env.get("KAFKA_CA_FILE") else None,
        )

    def as_principal(self, principal: str) -> KafkaAccess:
        """The same broker as another local principal (tools and tests that play one)."""
        return KafkaAccess.local(principal, self.bootstrap)

    @property
    def authenticated(self) -> bool:
        return self.protocol == "SASL_SSL"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.authenticated:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def faststream(self) -> BaseSecurity | None:
        """`KafkaBroker(..., security=access.faststream())`."""
        if not self.authenticated:
            return None
        return SASLScram512(username=self.principal, password=self.password, ssl_context=self.ssl_context)

    def aiokafka(self) -> dict[str, Any]:
        """Options of an aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.authenticated:
            options |= {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": MECHANISM,
                "sasl_plain_username": self.principal,
                "sasl_plain_password": self.password,
                "ssl_context": self.ssl_context,
            }
        return options

    def librdkafka(self) -> dict[str, Any]:
        """Options of a librdkafka client (confluent-kafka: the admin tool's ACLs and users)."""
        options: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.authenticated:
            options |= {
                "security.protocol": "SASL_SSL",
                "sasl.mechanisms": MECHANISM,
                "sasl.username": self.principal,
                "sasl.password": self.password,
            }
            if self.ca_file:
                options["ssl.ca.location"] = str(self.ca_file)
        return options
