"""Prometheus config and rules: promtool checks, the rule unit tests, and a real Prometheus
started by deploy/local/prometheus.sh scraping a real /metrics endpoint."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
PROMETHEUS_SH = ROOT / "deploy" / "local" / "prometheus.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (install.sh system installs prometheus)",
)

# Every metric name the rules may use, as servicekit and the services export them.
EXPORTED = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "topup_credit_seconds_bucket",
    "topup_credit_seconds_count",
    "dependency_ready",
    "store_wedged",
    "supervisor_restarts_total",
    "supervisor_store_probes_total",
    "supervisor_store_probe_misses",
    "events_consumed_total",
    "event_batch_seconds_bucket",
    "event_delivery_seconds_bucket",
    "event_batches_total",
    "consumer_lag",
    "events_published_total",
    "dead_letters_total",
    "outbox_pending",
    "outbox_oldest_pending_seconds",
    "service_ready",
    "up",
    "auth_logins_total",
    "otp_sent_total",
    "otp_lockouts_total",
    "otp_deliveries_total",
    "auth_locks_total",
    "payment_bill_overpayments_total",
    "payments_total",
    "payment_notifications_total",
    "consumer_healthy",
    "ledger_check_violations",
    "ledger_check_last_success_timestamp_seconds",
    "payment_late_successes_total",
    "payment_reconcile_last_run",
    "stores_catalogue_stores",
    "stores_catalogue_imports_total",
    "vas_charges_total",
    "scheduled_runs_total",
    "push_sends_total",
    "promotion_fanouts_running",
    "promotion_fanout_devices_total",
    "promotion_fanout_units_total",
    "loyalty_redemptions_total",
    "loyalty_transfers_recovered_total",
    # The lag exporter (tools/lag-exporter): consumer lag read from the broker.
    "kafka_consumergroup_lag",
    "kafka_consumergroup_members",
    "kafka_consumergroup_partition_commit_age_seconds",
    "kafka_lag_exporter_last_success_timestamp_seconds",
}
REQUIRED_ALERTS = {
    "ServiceDown",
    "ServiceNotReady",
    "HighErrorRate",
    "HighLatencyP99",
    "ConsumerLagHigh",
    "DeadLettersAppearing",
    "OutboxStuck",
    "OtpLockoutSpike",
    "PaymentNotificationsRejected",
    "ConsumerWaitingOutOutage",
    "LedgerInvariantBroken",
    "ReconciliationUnexplained",
    # SLOs (rules/slo.yml): multi-window burn rates, and the store's health
    "ApiAvailabilityBudgetBurnFast",
    "ApiAvailabilityBudgetBurnSlow",
    "ApiLatencyBudgetBurnFast",
    "ApiLatencyBudgetBurnSlow",
    "TopupCreditBudgetBurnFast",
    "TopupCreditBudgetBurnSlow",
    "StoreNotReady",
    "StoreWedged",
    "StoreRestartedBySupervisor",
    "StoreRestartLoop",
    "ConsumerGroupStalled",
    "ConsumerGroupEmpty",
    "LagExporterDown",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def render(out: Path, **env: str) -> Path:
    """Renders with env.sh's default ports (whatever platform this environment points at)."""
    ours = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
    full_env = {**ours, "MM_STATE": str(out / "state"), **env}
    subprocess.run(["bash", str(PROM / "render.sh"), str(out / "conf")], env=full_env, check=True, timeout=60)
    return out / "conf"


def load_rules() -> list[dict]:
    rules = []
    for path in sorted((PROM / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


def test_rendered_config_passes_promtool(tmp_path: Path) -> None:
    conf = render(tmp_path, SERVICES="account vas payment loyalty notify stores")
    result = promtool("check", "config", str(conf / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    text = (conf / "prometheus.yml").read_text()
    for name, port in [("account", 8101), ("vas", 8102), ("payment", 8103), ("stores", 8106)]:
        assert f"job_name: {name}\n" in text
        assert f'"127.0.0.1:{port}"' in text
        assert f'service: "{name}-service"' in text
    assert "metrics_path: /debug/metrics" in text
    assert '"127.0.0.1:8088"' in text  # FerretDB
    assert '"127.0.0.1:8191"' in text  # SMSC sandbox
    assert '"127.0.0.1:8192"' in text  # payment provider sandbox
    assert "job_name: lag-exporter\n" in text and '"127.0.0.1:8109"' in text  # lag from the broker


def test_only_existing_services_are_scraped(tmp_path: Path) -> None:
    text = (render(tmp_path, SERVICES="account payment") / "prometheus.yml").read_text()
    assert "job_name: account\n" in text
    assert "job_name: payment\n" in text
    for absent in ("vas", "loyalty", "notify", "stores"):
        assert f"job_name: {absent}\n" not in text


def test_render_refuses_an_unknown_service(tmp_path: Path) -> None:
    env = {**os.environ, "MM_STATE": str(tmp_path), "SERVICES": "account billing"}
    result = subprocess.run(
        ["bash", str(PROM / "render.sh"), str(tmp_path / "conf")], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "billing" in result.stderr


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    files = sorted((PROM / "tests").glob("*.yml"))
    assert files
    result = promtool("test", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_with_severity_and_annotations() -> None:
    alerts = {r["alert"]: r for r in load_rules() if "alert" in r}
    assert set(alerts) >= REQUIRED_ALERTS
    runbook = (PROM / "RUNBOOK.md").read_text().splitlines()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), (name, key)
        path, anchor = rule["annotations"]["runbook"].split("#", 1)
        assert path == "deploy/prometheus/RUNBOOK.md"
        # One "## Name" heading per alert family; GitHub's anchor is the lower-cased heading.
        assert any(line.startswith("## ") and line[3:].strip().lower() == anchor for line in runbook), name


def test_every_alert_is_unit_tested() -> None:
    tested = set()
    for path in (PROM / "tests").glob("*.yml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("alertname:"):
                tested.add(line.split(":", 1)[1].strip())
    alerts = {r["alert"] for r in load_rules() if "alert" in r}
    assert alerts <= tested, alerts - tested


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers, ranges
    tokens = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))  # not functions
    return tokens - {"offset", "and", "or", "unless", "bool"}


def test_rules_only_use_exported_metric_names() -> None:
    recorded = {r["record"] for r in load_rules() if "record" in r}
    for rule in load_rules():
        unknown = metric_names(rule["expr"]) - EXPORTED - recorded
        assert not unknown, (rule.get("alert") or rule.get("record"), unknown)
    assert metric_names('sum by (service) (rate(x_total{a="b"}[5m])) / on (service) y offset 10m') == {
        "x_total",
        "y",
    }


# --- A real Prometheus ---------------------------------------------------------------------------

SAMPLE_METRICS = b"""# TYPE http_requests_total counter
http_requests_total{service="account-service",method="GET",route="/api/v1/me",status="200"} 7
# TYPE service_ready gauge
service_ready{service="account-service"} 1
"""


class MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(SAMPLE_METRICS)))
        self.end_headers()
        self.wfile.write(SAMPLE_METRICS)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed")
    state = tmp_path_factory.mktemp("prom")
    account_port, payment_port, prom_port = free_port(), free_port(), free_port()
    server = ThreadingHTTPServer(("127.0.0.1", account_port), MetricsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "MM_STATE": str(state),
        "SERVICES": "account payment",
        "ACCOUNT_PORT": str(account_port),
        "PAYMENT_PORT": str(payment_port),  # nothing listens: up == 0
        "PROMETHEUS_PORT": str(prom_port),
        "SCRAPE_INTERVAL": "1s",
        "FERRETDB_METRICS_TARGET": "",
        "SMSC_METRICS_TARGET": "",
        "PAYPROV_METRICS_TARGET": "",
        "PUSH_METRICS_TARGET": "",
        "SUPERVISOR_METRICS_TARGET": "",
        "LAG_EXPORTER_METRICS_TARGET": "",
    }
    subprocess.run(["bash", str(PROMETHEUS_SH), "up"], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{prom_port}", env
    finally:
        subprocess.run(["bash", str(PROMETHEUS_SH), "down"], env=env, capture_output=True, timeout=60)
        server.shutdown()
        server.server_close()


def query(url: str, promql: str, want: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = httpx.get(f"{url}/api/v1/query", params={"query": promql}).json()["data"]["result"]
        if len(result) >= want or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_prometheus_scrapes_services_with_their_labels(prometheus: tuple[str, dict[str, str]]) -> None:
    url, _ = prometheus
    up = {r["metric"]["job"]: r for r in query(url, "up", want=3)}
    assert up["account"]["value"][1] == "1"
    assert up["account"]["metric"]["service"] == "account-service"
    assert up["account"]["metric"]["tier"] == "service"
    assert up["payment"]["value"][1] == "0"
    assert up["prometheus"]["value"][1] == "1"
    [series] = query(url, "http_requests_total", want=1)
    assert series["metric"]["service"] == "account-service"
    assert "exported_service" not in series["metric"]
    assert series["metric"]["job"] == "account"


def test_prometheus_loaded_the_rules(prometheus: tuple[str, dict[str, str]]) -> None:
    url, env = prometheus
    groups = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert names >= REQUIRED_ALERTS
    assert "service:http_requests:rate5m" in names
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])
    # reload re-renders and applies (SERVICES changed: payment no longer scraped).
    subprocess.run(
        ["bash", str(PROMETHEUS_SH), "reload"],
        env={**env, "SERVICES": "account"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        active = httpx.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]
        if {t["labels"]["job"] for t in active} == {"account", "prometheus"}:
            break
        time.sleep(0.5)
    assert {t["labels"]["job"] for t in active} == {"account", "prometheus"}
