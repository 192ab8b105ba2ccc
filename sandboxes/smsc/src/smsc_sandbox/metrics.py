"""Prometheus metrics of one sandbox instance (own registry: tests run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SmscMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "smsc_messages_received",
            "Complete messages stored (after reassembly)",
            ["data_coding"],
            registry=self.registry,
        )
        self.submits = Counter("smsc_submit_sm_accepted", "submit_sm PDUs accepted", registry=self.registry)
        self.binds = Counter(
            "smsc_binds", "Bind attempts by type and result", ["bind_type", "result"], registry=self.registry
        )
        self.unbinds = Counter("smsc_unbinds", "Unbinds requested by ESMEs", registry=self.registry)
        self.rejects = Counter(
            "smsc_rejects",
            "Requests answered with an error status",
            ["command", "status"],
            registry=self.registry,
        )
        self.bound_sessions = Gauge(
            "smsc_bound_sessions", "Currently bound ESME sessions", registry=self.registry
        )
        self.receipts = Counter(
            "smsc_delivery_receipts", "Delivery receipts sent, by outcome", ["result"], registry=self.registry
        )
        self.enquire_links = Counter(
            "smsc_enquire_links_sent",
            "enquire_link probes sent to ESMEs, by outcome",
            ["result"],
            registry=self.registry,
        )
