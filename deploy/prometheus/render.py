#!/usr/bin/env python3
"""Renders prometheus.yml and copies the rule files into OUT_DIR (stdlib only).

Usage: render.py OUT_DIR   (normally through render.sh, which supplies env.sh's defaults)

One job per service in SERVICES (job=<name>, service=<name>-service as the services label
their own metrics, tier=service), FerretDB and the local supervisor (tier=infra), Prometheus
itself (tier=monitoring)
and the sandboxes of the external parties (tier=sandbox; the alerts treat them apart).

Environment (defaults in brackets):
  SERVICES ["account payment"], <NAME>_PORT for each of them
  SCRAPE_HOST [127.0.0.1]                  where the local processes listen
  PROMETHEUS_SERVICE_TARGET [""]           e.g. "{name}:8000" (docker-compose): overrides the two above
  PROMETHEUS_PORT [9090]                   Prometheus' own target (PROMETHEUS_SELF_TARGET overrides)
  FERRETDB_METRICS_TARGET [127.0.0.1:8088] "" to skip (a real MongoDB has no such endpoint)
  SUPERVISOR_METRICS_TARGET [""]          the local supervisor's metrics (render.sh: its port
                                            unless SUPERVISE=0); "" to skip
  SMSC_METRICS_TARGET [127.0.0.1:$SMSC_HTTP_PORT], PAYPROV_METRICS_TARGET [127.0.0.1:$PAYPROV_PORT]
                                            "" to skip
  LAG_EXPORTER_METRICS_TARGET [127.0.0.1:$LAG_EXPORTER_PORT (8109)]
                                            consumer lag read from the broker (tools/lag-exporter,
                                            job lag-exporter, tier=monitoring); "" to skip
  SCRAPE_INTERVAL [15s], ENVIRONMENT [local] (external label), ALERTMANAGER_TARGET [""]
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KNOWN_SERVICES = ("account", "vas", "payment", "loyalty", "notify", "stores")


class RenderError(Exception):
    pass


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise RenderError(f"{name} is not set")
        return default
    return value


def target(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.\-]+:[0-9]{1,5}", value):
        raise RenderError(f"{name}={value!r}: expected host:port")
    return value


def job(
    name: str, address: str, labels: dict[str, str], metrics_path: str = "/metrics", honor: bool = False
) -> str:
    lines = [f"  - job_name: {name}"]
    if metrics_path != "/metrics":
        lines.append(f"    metrics_path: {metrics_path}")
    if honor:
        # The services label their own metrics service="<name>-service", equal to the target
        # label below: honouring it avoids a duplicate exported_service label.
        lines.append("    honor_labels: true")
    lines.append("    static_configs:")
    lines.append(f'      - targets: ["{address}"]')
    lines.append("        labels:")
    lines.extend(f'          {key}: "{value}"' for key, value in labels.items())
    return "\n".join(lines)


def render() -> str:
    services = [s for s in re.split(r"[\s,]+", env("SERVICES", "account payment").strip()) if s]
    for name in services:
        if name not in KNOWN_SERVICES:
            raise RenderError(f"SERVICES: unknown service {name!r}")
    interval = env("SCRAPE_INTERVAL", "15s")
    if not re.fullmatch(r"[1-9][0-9]*[sm]", interval):
        raise RenderError(f"SCRAPE_INTERVAL={interval!r}: expected e.g. 15s")
    seconds = int(interval[:-1]) * (60 if interval.endswith("m") else 1)
    timeout = interval if seconds < 10 else "10s"  # may not exceed the interval
    environment = env("ENVIRONMENT", "local")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", environment):
        raise RenderError(f"ENVIRONMENT={environment!r}: expected a plain word")

    host = env("SCRAPE_HOST", "127.0.0.1")
    template = env("PROMETHEUS_SERVICE_TARGET", "")
    jobs = []
    for name in (s for s in KNOWN_SERVICES if s in services):
        address = template.format(name=name) if template else f"{host}:{env(f'{name.upper()}_PORT')}"
        labels = {"service": f"{name}-service", "tier": "service"}
        jobs.append(job(name, target(f"{name} target", address), labels, honor=True))

    self_target = env("PROMETHEUS_SELF_TARGET", f"127.0.0.1:{env('PROMETHEUS_PORT', '9090')}")
    labels = {"service": "prometheus", "tier": "monitoring"}
    jobs.append(job("prometheus", target("PROMETHEUS_SELF_TARGET", self_target), labels))
    ferretdb = env("FERRETDB_METRICS_TARGET", "127.0.0.1:8088")
    if ferretdb:
        labels = {"service": "ferretdb", "tier": "infra"}
        jobs.append(job("ferretdb", target("FERRETDB_METRICS_TARGET", ferretdb), labels, "/debug/metrics"))
    supervisor = env("SUPERVISOR_METRICS_TARGET", "")
    if supervisor:
        labels = {"service": "supervisor", "tier": "infra"}
        jobs.append(job("supervisor", target("SUPERVISOR_METRICS_TARGET", supervisor), labels))
    lag_exporter = env("LAG_EXPORTER_METRICS_TARGET", f"127.0.0.1:{env('LAG_EXPORTER_PORT', '8109')}")
    if lag_exporter:
        # Its series carry group/topic/partition labels, never `service`: nothing to honour.
        labels = {"service": "lag-exporter", "tier": "monitoring"}
        jobs.append(job("lag-exporter", target("LAG_EXPORTER_METRICS_TARGET", lag_exporter), labels))
    sandboxes = (
        ("smsc-sandbox", "SMSC_METRICS_TARGET", f"127.0.0.1:{env('SMSC_HTTP_PORT', '8191')}"),
        ("payment-provider-sandbox", "PAYPROV_METRICS_TARGET", f"127.0.0.1:{env('PAYPROV_PORT', '8192')}"),
        ("push-sandbox", "PUSH_METRICS_TARGET", f"127.0.0.1:{env('PUSH_SANDBOX_PORT', '8193')}"),
    )
    for name, variable, default in sandboxes:
        address = env(variable, default)
        if address:
            jobs.append(job(name, target(variable, address), {"service": name, "tier": "sandbox"}))

    alerting = ""
    alertmanager = env("ALERTMANAGER_TARGET", "")
    if alertmanager:
        alerting = (
            "alerting:\n  alertmanagers:\n    - static_configs:\n"
            f'        - targets: ["{target("ALERTMANAGER_TARGET", alertmanager)}"]\n\n'
        )
    return (
        "# GENERATED by deploy/prometheus/render.py: edit that, or the rules in deploy/prometheus/rules.\n"
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  scrape_timeout: {timeout}\n"
        f"  evaluation_interval: {interval}\n"
        "  external_labels:\n"
        f'    environment: "{environment}"\n'
        "\n"
        "rule_files:\n"
        '  - "rules/*.yml"\n'
        "\n"
        f"{alerting}"
        "scrape_configs:\n" + "\n".join(jobs) + "\n"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        text = render()
    except RenderError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 1
    rules = out / "rules"
    if rules.exists():
        shutil.rmtree(rules)
    rules.mkdir(parents=True)
    for rule_file in sorted((HERE / "rules").glob("*.yml")):
        shutil.copyfile(rule_file, rules / rule_file.name)
    (out / "prometheus.yml").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
