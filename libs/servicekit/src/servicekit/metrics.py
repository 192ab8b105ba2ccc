"""Prometheus metrics with the same names in every service (see deploy/prometheus/rules)."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Events consumed, by outcome: applied, duplicate, ignored, dead_lettered",
    ["service", "group", "topic", "outcome"],
)
EVENT_BATCHES = Counter(
    "event_batches_total", "Consumed batches, by result: ok, retried, failed", ["service", "group", "result"]
)
EVENT_BATCH_SECONDS = Histogram(
    "event_batch_seconds", "Time to handle one consumed batch", ["service", "group"], buckets=LATENCY_BUCKETS
)
EVENT_DELIVERY_SECONDS = Histogram(
    "event_delivery_seconds",
    "Wait of the oldest record of each partition in a batch, from its producer timestamp until "
    "the batch reaches the handler pipeline (a bound on every record's wait)",
    ["service", "group", "topic"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "consumer_lag",
    "Messages behind the partition's high watermark",
    ["service", "group", "topic", "partition"],
)
EVENTS_PUBLISHED = Counter("events_published_total", "Events published", ["service", "topic"])
DEAD_LETTERS = Counter(
    "dead_letters_total", "Messages sent to a dead-letter topic", ["service", "group", "topic", "reason"]
)
OUTBOX_PENDING = Gauge("outbox_pending", "Outbox entries not yet relayed", ["service", "collection"])
OUTBOX_OLDEST = Gauge(
    "outbox_oldest_pending_seconds",
    "Age of the oldest outbox entry not yet relayed",
    ["service", "collection"],
)
SERVICE_READY = Gauge("service_ready", "1 when Kafka, the store and Redis answer", ["service"])
DEPENDENCY_READY = Gauge(
    "dependency_ready",
    "1 when the dependency (store, redis, kafka) answered the service's last check in time",
    ["service", "dependency"],
)
STORE_WEDGED = Gauge(
    "store_wedged",
    "1 when the store's last check timed out although its server answers the driver's "
    "heartbeat (FerretDB 1.24 wedged: it accepts connections but runs no command)",
    ["service"],
)
CONSUMER_HEALTHY = Gauge(
    "consumer_healthy",
    "1 while a member of a consumer group applies its batches; 0 while it waits out an outage",
    ["service", "group", "member"],
)
STORE_OPERATIONS = Counter(
    "store_operations_total",
    "Commands sent to the document store (one per round trip), by command and outcome",
    ["service", "command", "outcome"],
)

__all__ = [
    "CONSUMER_HEALTHY",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DEPENDENCY_READY",
    "EVENTS_CONSUMED",
    "EVENTS_PUBLISHED",
    "EVENT_BATCHES",
    "EVENT_BATCH_SECONDS",
    "EVENT_DELIVERY_SECONDS",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "OUTBOX_OLDEST",
    "OUTBOX_PENDING",
    "REGISTRY",
    "SERVICE_READY",
    "STORE_OPERATIONS",
    "STORE_WEDGED",
]
