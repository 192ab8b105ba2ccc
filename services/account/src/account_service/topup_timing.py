"""How long a top-up took from the payment's record to the credited balance: the SLI of
"a card top-up is credited within 5 s of the provider's notification" (deploy/prometheus/
rules/slo.yml). The payment service records a payment when the provider's notification
settles it (`TopupRecorded.recorded_at`); the ledger credits it when its journal decision is
in and the read cache shows the new balance: that moment is observed here, once per top-up
(a replay of an earlier decision is not a credit and is not observed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Histogram

from mobi_contracts import AnyEvent
from mobi_contracts.events.payment import TopupRecorded
from servicekit.mongo import Doc

# A bucket at exactly 5 s: the SLO's threshold is read from it without interpolation.
TOPUP_CREDIT_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
TOPUP_CREDIT_SECONDS = Histogram(
    "topup_credit_seconds",
    "From the payment's record (the provider's notification settled it) to the balance "
    "credited and readable, per top-up decided",
    ["service", "method"],
    buckets=TOPUP_CREDIT_BUCKETS,
)


def observe_credited(
    decisions: Iterable[tuple[AnyEvent, Doc]], decided_at: datetime, service: str, now: datetime | None = None
) -> int:
    """One observation per top-up credited by the decisions taken at `decided_at` (a batch's
    decisions share it; replayed ones are older), each given with its cause. Returns how many
    were observed."""
    credited_at = now or datetime.now(UTC)
    observed = 0
    for cause, doc in decisions:
        if not isinstance(cause, TopupRecorded) or doc.get("at") != decided_at or not doc.get("entries"):
            continue
        waited = max(0.0, (credited_at - cause.data.recorded_at).total_seconds())
        TOPUP_CREDIT_SECONDS.labels(service, cause.data.method).observe(waited)
        observed += 1
    return observed
