"""The overview part of `make status`: what the dashboards' overview shows, in the terminal.

- each service: /health, /ready and its dependency checks (the store, Redis, Kafka, consumers);
- consumer lag per group as the broker sees it: from the lag exporter's /metrics, or, when it
  does not answer, read from the broker directly as `ops` (lag_exporter.broker);
- outboxes: the oldest entry not relayed yet and how many wait (each service's /metrics);
- dead letters: records kept on the dead-letter topics (broker) and those sent since each
  service started (its dead_letters_total).

Environment (env.sh): SERVICES, <NAME>_PORT, LAG_EXPORTER_PORT, KAFKA_BOOTSTRAP.
Exit status 0 whatever it finds: it reports, the supervisor and the alerts act.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

TIMEOUT = 3.0
Samples = list[tuple[str, dict[str, str], float]]


def get(port: str, path: str) -> tuple[int, str]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (OSError, ValueError) as exc:
        return 0, type(exc).__name__


def samples(text: str) -> Samples:
    return [
        (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
    ]


@dataclass
class ServiceState:
    name: str
    health: str = "down"
    ready: str = "-"
    checks: dict[str, str] = field(default_factory=dict)
    metrics: Samples = field(default_factory=list)


def read_service(name: str, port: str) -> ServiceState:
    state = ServiceState(name)
    code, _ = get(port, "/health")
    if code != 200:
        return state
    state.health = "ok"
    code, body = get(port, "/ready")
    state.ready = "yes" if code == 200 else "NO"
    try:
        state.checks = json.loads(body).get("checks", {})
    except ValueError:
        state.checks = {"ready": body[:60]}
    code, body = get(port, "/metrics")
    if code == 200:
        state.metrics = samples(body)
    return state


def print_services(states: list[ServiceState]) -> None:
    print("\nServices (health, readiness and what it checks)")
    print(f"  {'service':<10} {'health':<7} {'ready':<6} {'store':<7} {'redis':<7} {'kafka':<7} consumers")
    for s in states:
        consumers = [v for k, v in s.checks.items() if k.startswith("consumer ")]
        consumer = "-" if not consumers else "ok" if all(v == "ok" for v in consumers) else "WAITING"
        deps = [s.checks.get(d, "-") for d in ("store", "redis", "kafka")]
        deps = [d if d in ("ok", "-") else "ERROR" for d in deps]
        print(f"  {s.name:<10} {s.health:<7} {s.ready:<6} {deps[0]:<7} {deps[1]:<7} {deps[2]:<7} {consumer}")
        for key, value in s.checks.items():
            if value != "ok":
                print(f"  {'':<10} {key}: {value}")


async def lag_from_broker() -> Samples:
    """The exporter's series computed here, from one reading of the broker as `ops`."""
    from lag_exporter.broker import BrokerReader
    from lag_exporter.domain import CommitClock
    from lag_exporter.metrics import group_families, partition_families
    from lag_exporter.settings import LagExporterSettings

    settings = LagExporterSettings()
    reader = BrokerReader(
        settings.kafka_access, exclude_groups=settings.exclude_groups, exclude_topics=settings.exclude_topics
    )
    try:
        await asyncio.wait_for(reader.start(), 10)
        snapshot = CommitClock().snapshot(await asyncio.wait_for(reader.read(), 10))
    finally:
        await reader.stop()
    found: Samples = [
        ("kafka_topic_partition_end_offset", {"topic": t, "partition": str(p)}, float(o))
        for (t, p), o in snapshot.end.items()
    ]
    for family in [*partition_families(snapshot), *group_families(snapshot)]:
        found += [(s.name, s.labels, s.value) for s in family.samples]
    return found


def broker_series() -> tuple[str, Samples]:
    port = os.environ.get("LAG_EXPORTER_PORT", "8109")
    code, body = get(port, "/metrics")
    if code == 200 and "kafka_consumergroup_members{" in body:
        return f"lag exporter, port {port}", samples(body)
    try:
        return f"read from the broker now: the lag exporter on port {port} did not answer", asyncio.run(
            lag_from_broker()
        )
    except Exception as exc:
        return f"unavailable: lag exporter down and the broker unreadable ({type(exc).__name__})", []


def print_lag(source: str, series: Samples) -> None:
    print(f"\nConsumer lag per group ({source})")
    lag: dict[str, float] = defaultdict(float)
    members: dict[str, float] = {}
    age: dict[str, float] = {}
    for name, labels, value in series:
        if name == "kafka_consumergroup_lag":
            lag[labels["group"]] += value
        elif name == "kafka_consumergroup_members":
            members[labels["group"]] = value
        elif name == "kafka_consumergroup_last_commit_age_seconds":
            age[labels["group"]] = value
    print(f"  {'group':<18} {'lag':>8} {'members':>8}  last commit moved")
    for group in sorted(set(lag) | set(members)):
        moved = f"{age[group]:.0f} s ago" if group in age else "-"
        flag = "  STALLED?" if lag[group] > 0 and age.get(group, 0) > 300 else ""
        flag = "  NO MEMBERS" if lag[group] > 0 and members.get(group, 1) == 0 else flag
        print(f"  {group:<18} {lag[group]:>8.0f} {members.get(group, 0):>8.0f}  {moved}{flag}")


def print_outboxes(states: list[ServiceState]) -> None:
    print("\nOutboxes (oldest entry not relayed to Kafka)")
    rows = []
    for s in states:
        pending = {lab["collection"]: v for n, lab, v in s.metrics if n == "outbox_pending"}
        for name, labels, value in s.metrics:
            if name == "outbox_oldest_pending_seconds":
                rows.append((s.name, labels["collection"], value, pending.get(labels["collection"], 0)))
    for service, collection, oldest, waiting in rows:
        print(f"  {service:<10} {collection:<22} {oldest:>7.1f} s  ({waiting:.0f} pending)")
    if not rows:
        print("  (no service reports an outbox)")


def print_dead_letters(states: list[ServiceState], series: Samples) -> None:
    print("\nDead letters")
    kept: dict[str, float] = defaultdict(float)
    for name, labels, value in series:
        if name == "kafka_topic_partition_end_offset" and labels["topic"].startswith("dlq."):
            kept[labels["topic"]] += value
    for s in states:
        since_start = sum(v for n, _, v in s.metrics if n == "dead_letters_total")
        topic = f"dlq.{s.name}-service"
        kept_text = f"{kept[topic]:.0f} on {topic}" if topic in kept else "topic not read"
        print(f"  {s.name:<10} {since_start:>5.0f} since the service started, {kept_text}")


def main() -> None:
    services = os.environ.get("SERVICES", "account payment vas loyalty notify stores").split()
    ports = {name: os.environ.get(f"{name.upper()}_PORT", "") for name in services}
    states = [read_service(name, port) for name, port in ports.items() if port]
    source, series = broker_series()
    print_services(states)
    print_lag(source, series)
    print_outboxes(states)
    print_dead_letters(states, series)


if __name__ == "__main__":
    main()
