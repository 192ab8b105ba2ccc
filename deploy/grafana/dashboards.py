"""The platform's Grafana dashboards, generated (`make docs`) into the chart:
deploy/helm/mymobifone/files/dashboards/<uid>.json, shipped as ConfigMaps for the Grafana
sidecar (templates/dashboards.yaml).

- mymobifone-overview: is anything stuck, dropping or losing money? Requests, errors and
  latency per service; consumer lag per group as the broker sees it (tools/lag-exporter);
  outbox age; dead letters; payment success; push outcomes; OTP sends and lock-outs; store
  readiness.
- mymobifone-<service>: one per service: the kit's rows (HTTP, events, outbox, readiness, store)
  and a row of the service's own metrics.

Every query names only metrics some part of the platform exports, or the recording rules of
deploy/prometheus/rules (tests/deploy/test_dashboards.py); every one returns data on the local
platform after the e2e suite (tests/e2e/test_zzzz_dashboards.py).

    python deploy/grafana/dashboards.py [--check]   # --check: exit 1 if the files are stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana import RARE, Dashboard, Panel, Row, p99, q, rare_count, rate, to_json
from service_panels import LOCKOUTS, PAYMENT, SERVICES, ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy" / "helm" / "mymobifone" / "files" / "dashboards"
NOT_PROBES = 'route!~"/health|/ready|/metrics"'


# --- the kit's rows, the same for every service ---------------------------------------------


def http_row(s: ServiceSpec) -> Row:
    sel = f"{s.label}, {NOT_PROBES}"
    return Row(
        "HTTP",
        (
            Panel(
                "Requests by route and status",
                (q(rate("http_requests_total", "route, status", sel), "{{route}} {{status}}"),),
                "Requests per second (probes and /metrics left out).",
                "reqps",
            ),
            Panel(
                "Latency p99 by route",
                (q(p99("http_request_duration_seconds", "route", sel), "{{route}}"),),
                "99th percentile of the time to answer, per route.",
                "s",
            ),
            Panel(
                "5xx ratio",
                (q(f"service:http_requests_5xx:ratio_rate5m{{{s.label}}}", "5xx"),),
                "Share of requests answered with a 5xx (recording rule "
                "service:http_requests_5xx:ratio_rate5m).",
                "percentunit",
            ),
        ),
    )


def events_row(s: ServiceSpec) -> Row:
    groups = "|".join(s.groups)
    panels = [
        Panel(
            "Lag from the broker",
            (q(f'sum by (group, topic) (kafka_consumergroup_lag{{group=~"{groups}"}})', "{{topic}}"),),
            "Records the group has not committed yet, read from the broker by the lag exporter (holds "
            "when the consumer is dead).",
        ),
        Panel(
            "Commit age and members",
            (
                q(
                    f'max by (group) (kafka_consumergroup_last_commit_age_seconds{{group=~"{groups}"}})',
                    "commit age {{group}}",
                ),
                q(f'max by (group) (kafka_consumergroup_members{{group=~"{groups}"}})', "members {{group}}"),
            ),
            "Seconds since the group's committed offsets last moved (rising with lag > 0: stalled), "
            "and its members.",
        ),
        Panel(
            "Events consumed by outcome",
            (q(rate("events_consumed_total", "topic, outcome", s.label), "{{topic}} {{outcome}}"),),
            "Events handled per second: applied, duplicate (deduplicated), ignored, dead-lettered.",
            "ops",
        ),
        Panel(
            "Batch and delivery p99",
            (
                q(p99("event_batch_seconds", "group", s.label), "batch {{group}}"),
                q(p99("event_delivery_seconds", "topic", s.label), "delivery {{topic}}"),
            ),
            "Time to handle a batch, and the wait of records from their producer to the handler.",
            "s",
        ),
        Panel(
            "Dead letters (last hour)",
            (q(rare_count("dead_letters_total", "topic, reason", s.label), "{{topic}} {{reason}}"),),
            "Records sent to the group's dead-letter topic, by reason." + RARE,
            rare=True,
        ),
    ]
    if s.publishes:
        panels.append(
            Panel(
                "Events published",
                (q(rate("events_published_total", "topic", s.label), "{{topic}}"),),
                "Events this service published per second.",
                "ops",
            )
        )
    return Row("Events", tuple(panels))


def state_row(s: ServiceSpec) -> Row:
    panels = [
        Panel(
            "Ready and consumers healthy",
            (
                q(f"min by (instance) (service_ready{{{s.label}}})", "ready {{instance}}"),
                q(f"min by (group) (consumer_healthy{{{s.label}}})", "consumer {{group}}"),
            ),
            "1 when the store, Redis and Kafka answer; consumers at 0 wait out an outage.",
        ),
        Panel(
            "Store operations",
            (q(rate("store_operations_total", "command, outcome", s.label), "{{command}} {{outcome}}"),),
            "Round trips to the document store per second, by command and outcome.",
            "ops",
        ),
    ]
    if s.outbox:
        panels.append(
            Panel(
                "Outbox",
                (
                    q(
                        f"max by (collection) (outbox_oldest_pending_seconds{{{s.label}}})",
                        "oldest {{collection}}",
                    ),
                    q(f"max by (collection) (outbox_pending{{{s.label}}})", "pending {{collection}}"),
                ),
                "Age of the oldest entry not yet relayed to Kafka (growing: events are not leaving), "
                "and how many wait.",
                "s",
            )
        )
    return Row("Readiness, store and outbox", tuple(panels))


def service_dashboard(s: ServiceSpec) -> Dashboard:
    return Dashboard(
        uid=f"mymobifone-{s.name}",
        title=f"My MobiFone / {s.title}",
        description=f"The {s.name} service: HTTP, events, readiness and its own metrics.",
        rows=(http_row(s), events_row(s), state_row(s), Row(s.title, s.own)),
        tags=("mymobifone", s.name),
    )


# --- the overview --------------------------------------------------------------------------


def overview() -> Dashboard:
    traffic = Row(
        "Requests",
        (
            Panel(
                "Request rate per service",
                (q("service:http_requests:rate5m", "{{service}}"),),
                "Requests per second per service (probes left out).",
                "reqps",
            ),
            Panel(
                "5xx ratio per service",
                (q("service:http_requests_5xx:ratio_rate5m", "{{service}}"),),
                "Share of requests answered with a 5xx.",
                "percentunit",
            ),
            Panel(
                "Latency p99 per service",
                (q("service:http_request_duration_seconds:p99_5m", "{{service}}"),),
                "99th percentile of the time to answer.",
                "s",
            ),
        ),
    )
    stuck = Row(
        "Stuck or dropping?",
        (
            Panel(
                "Consumer lag per group (broker)",
                (q("sum by (group) (kafka_consumergroup_lag)", "{{group}}"),),
                "Records each consumer group has not committed yet, read from the broker by the lag "
                "exporter: it keeps coming when a consumer is dead.",
            ),
            Panel(
                "Commit age per group",
                (q("max by (group) (kafka_consumergroup_last_commit_age_seconds)", "{{group}}"),),
                "Seconds since the group's committed offsets last moved. High with lag > 0: stalled "
                "(ConsumerGroupStalled); high with no lag: a quiet topic.",
                "s",
            ),
            Panel(
                "Outbox: oldest entry not relayed",
                (
                    q(
                        "max by (service, collection) (outbox_oldest_pending_seconds)",
                        "{{service}} {{collection}}",
                    ),
                ),
                "Events written with their state change but not yet on Kafka; growing means they are "
                "not leaving.",
                "s",
            ),
            Panel(
                "Dead letters (last hour)",
                (q(rare_count("dead_letters_total", "service, topic"), "{{service}} {{topic}}"),),
                "Records the consumers gave up on (dead-letter topics)." + RARE,
                rare=True,
            ),
            Panel(
                "Consumers waiting out an outage",
                (q("min by (service, group) (consumer_healthy)", "{{group}}"),),
                "1 while a consumer applies its batches, 0 while it waits for a dependency.",
            ),
        ),
    )
    money = Row(
        "Money and subscribers",
        (
            Panel(
                "Payment success ratio",
                PAYMENT.own[1].queries,
                "Share of final payments that succeeded, per kind.",
                "percentunit",
            ),
            Panel(
                "Push outcomes",
                (q(rate("push_sends_total", "provider, outcome"), "{{provider}} {{outcome}}"),),
                "Push requests by provider and outcome (sent, unregistered, failed, retried).",
                "ops",
            ),
            Panel(
                "OTP sends",
                (q(rate("otp_sent_total", "result"), "{{result}}"),),
                "OTP requests per second by result.",
                "ops",
            ),
            Panel(
                "OTP and login lock-outs (last hour)",
                LOCKOUTS,
                "Codes burnt after too many wrong tries and login keys locked." + RARE,
                rare=True,
            ),
        ),
    )
    store = Row(
        "Store",
        (
            Panel(
                "Service readiness",
                (q("min by (service) (service_ready)", "{{service}}"),),
                "1 when an instance's store, Redis and Kafka answer (min over instances).",
            ),
            Panel(
                "Store errors per service",
                (
                    q(
                        'sum by (service) (rate(store_operations_total{outcome="error"}[5m])) '
                        "or sum by (service) (0 * rate(store_operations_total[5m]))",
                        "{{service}}",
                    ),
                ),
                "Commands the document store failed, per second (0 when none).",
                "ops",
            ),
            Panel(
                "Document store scraped",
                (q('max by (job) (up{job="ferretdb"})', "FerretDB"),),
                "FerretDB's own metrics endpoint answers (local platform; a real MongoDB has its own "
                "exporter).",
            ),
        ),
    )
    return Dashboard(
        uid="mymobifone-overview",
        title="My MobiFone / Overview",
        description="Is anything stuck, dropping or losing money?",
        rows=(traffic, stuck, money, store),
        tags=("mymobifone", "overview"),
    )


def dashboards() -> list[Dashboard]:
    return [overview(), *(service_dashboard(s) for s in SERVICES)]


def render() -> dict[Path, str]:
    return {
        OUT / f"{d.uid}.json": json.dumps(to_json(d), indent=2, sort_keys=True) + "\n" for d in dashboards()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed files are stale")
    args = parser.parse_args()
    files = render()
    stale = sorted(str(p) for p, text in files.items() if not p.exists() or p.read_text() != text)
    stale += sorted(str(p) for p in OUT.glob("*.json") if p not in files)
    if args.check:
        if stale:
            print("out of date (run `make docs`): " + ", ".join(stale), file=sys.stderr)
            sys.exit(1)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for path in OUT.glob("*.json"):
        if path not in files:
            path.unlink()
    for path, text in files.items():
        path.write_text(text)


if __name__ == "__main__":
    main()
