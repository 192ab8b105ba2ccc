"""Prometheus metrics, one registry per app instance (tests run several sandboxes in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "payprov_http_requests_total",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.payment_requests_refused = Counter(
            "payprov_payment_requests_refused_total",
            "Payment URLs refused, by error code",
            ["code"],
            registry=self.registry,
        )
        self.payments = Counter(
            "payprov_payments_total",
            "Payments decided, by vnp_ResponseCode",
            ["response_code"],
            registry=self.registry,
        )
        self.ipn_attempts = Counter(
            "payprov_ipn_attempts_total",
            "IPN HTTP attempts: acknowledged, refused, http_error, transport_error, bad_answer",
            ["result"],
            registry=self.registry,
        )
        self.ipn_attempt_seconds = Histogram(
            "payprov_ipn_attempt_seconds",
            "Time for the merchant to answer one IPN attempt",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.notifications = Counter(
            "payprov_notifications_total",
            "Notifications finished, by kind and final status",
            ["kind", "status"],
            registry=self.registry,
        )
        self.queries = Counter(
            "payprov_querydr_total",
            "querydr requests, by vnp_ResponseCode",
            ["response_code"],
            registry=self.registry,
        )
