from __future__ import annotations

from typing import ClassVar, Self

from pydantic import model_validator

from servicekit.kafka.acls import HARNESS_PREFIXES, OPS
from servicekit.settings import KitSettings

# The local test and benchmark harnesses make groups and topics of their own by the hundred
# (servicekit.kafka.acls.HARNESS_PREFIXES): left out by default, they would drown the
# platform's own series.
_HARNESS = "|".join(sorted({prefix for prefixes in HARNESS_PREFIXES.values() for prefix in prefixes}))


class LagExporterSettings(KitSettings):
    """The kit's settings (Kafka access, HTTP, logs) with the exporter's own. It reads the bus as
    `ops` (READ and DESCRIBE on every topic and group, nothing else: servicekit.kafka.acls); it
    has no store, no Redis and no gateway in front of it."""

    service_name: str = "lag-exporter"
    http_port: int = 8109
    kafka_username: str = OPS

    # How often the broker is read. A scrape serves the last reading: scraping never waits on
    # the broker, and many Prometheus replicas cost the broker nothing more.
    poll_interval_seconds: float = 10.0
    # A reading older than this is not exported (a frozen lag would look healthy) and /ready fails.
    stale_after_seconds: float = 60.0
    # Groups and topics (full names, regular expressions) left out.
    exclude_groups: str = rf"^({_HARNESS})"
    exclude_topics: str = rf"^(__|{_HARNESS})"
    # Offset fetches in flight at once (one per group).
    group_concurrency: int = 8
    request_timeout_ms: int = 10_000

    REQUIRED_SECRETS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _intervals_make_sense(self) -> Self:
        if not 0 < self.poll_interval_seconds < self.stale_after_seconds:
            raise ValueError("need 0 < POLL_INTERVAL_SECONDS < STALE_AFTER_SECONDS")
        if self.group_concurrency < 1:
            raise ValueError("need GROUP_CONCURRENCY >= 1")
        return self
