"""Every service is operable: chart values, a scrape target, a dashboard and alerts of its own;
and the lag exporter is wired the same way (chart, scrape target, alerts)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .dashboards_support import ROOT, dashboards_module, exported_metrics, metric_names, rules
from .test_helm import PREFIX, container, env_of, find, one, render

CHART_VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "mymobifone" / "values.yaml").read_text())
HELPERS = (ROOT / "deploy" / "helm" / "mymobifone" / "templates" / "_helpers.tpl").read_text()
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def scrape_config(tmp_path: Path, services: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
    env |= {"MM_STATE": str(tmp_path / "state"), "SERVICES": " ".join(services)}
    out = tmp_path / "prom"
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "prometheus" / "render.sh"), str(out)], env=env, check=True, timeout=60
    )
    return yaml.safe_load((out / "prometheus.yml").read_text())


def gaps(name: str, jobs: set[str]) -> list[str]:
    """What service `name` lacks of: chart values, a scrape target, a dashboard, alerts on its
    own metrics."""
    missing = []
    known = re.search(r'define "mymobifone.knownServices" -}}\s*([^{]*?)\s*{{', HELPERS)
    assert known, "the chart's knownServices helper moved"
    if name not in CHART_VALUES["services"] or name not in known.group(1).split():
        missing.append("chart values")
    if name not in jobs:
        missing.append("scrape target")
    if f"mymobifone-{name}" not in {d.uid for d in dashboards_module().dashboards()}:
        missing.append("dashboard")
    code = ROOT / "services" / name / "src"
    own = exported_metrics(code) if code.is_dir() else set()
    if not own or not any(metric_names(r["expr"]) & own for r in rules() if "alert" in r):
        missing.append("alerts")
    return missing


def test_every_service_has_chart_values_a_scrape_target_a_dashboard_and_alerts(tmp_path: Path) -> None:
    assert len(SERVICES) == 6
    jobs = {job["job_name"] for job in scrape_config(tmp_path, SERVICES)["scrape_configs"]}
    assert {name: gaps(name, jobs) for name in SERVICES} == {name: [] for name in SERVICES}


def test_a_service_missing_them_is_reported(tmp_path: Path) -> None:
    jobs = {job["job_name"] for job in scrape_config(tmp_path, SERVICES)["scrape_configs"]}
    assert gaps("billing", jobs) == ["chart values", "scrape target", "dashboard", "alerts"]


def test_every_consumer_group_is_watched_from_the_broker() -> None:
    """Each service's group is on its dashboard's lag panel and under the broker-side alerts."""
    from mobi_contracts import CONSUMER_GROUPS

    dashboards = {d.uid: d for d in dashboards_module().dashboards()}
    for group in CONSUMER_GROUPS:
        service = group.owner.removesuffix("-service")  # a service's groups are on its dashboard
        exprs = " ".join(q.expr for p in dashboards[f"mymobifone-{service}"].panels() for q in p.queries)
        watched = re.findall(r'kafka_consumergroup_lag\{group=~"([^"]+)"\}', exprs)
        assert any(group.name in w.split("|") for w in watched), group.name
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    for name in ("ConsumerGroupStalled", "ConsumerGroupEmpty"):
        assert "kafka_consumergroup_lag" in metric_names(alerts[name]["expr"])
        assert "{" not in alerts[name]["expr"].split("kafka_consumergroup_lag")[1][:2]  # every group


# --- the lag exporter ----------------------------------------------------------------------


def test_the_lag_exporter_is_scraped_locally_and_alerted_on(tmp_path: Path) -> None:
    [job] = [
        j for j in scrape_config(tmp_path, SERVICES)["scrape_configs"] if j["job_name"] == "lag-exporter"
    ]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8109"]
    assert job["static_configs"][0]["labels"] == {"service": "lag-exporter", "tier": "monitoring"}
    alerts = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    assert 'up{job="lag-exporter"}' in alerts["LagExporterDown"]


def test_the_chart_runs_the_lag_exporter_as_ops_hardened_and_probed() -> None:
    docs = render()
    name = f"{PREFIX}-lag-exporter"
    pod = one(docs, "Deployment", name)["spec"]["template"]["spec"]
    c = container(one(docs, "Deployment", name), "lag-exporter")
    env = env_of(c)
    assert env["KAFKA_USERNAME"] == "ops"
    assert env["KAFKA_PASSWORD_FILE"] == "/etc/mymobifone/kafka-user/password"
    [user] = [v for v in pod["volumes"] if v["name"] == "kafka-user"]
    assert user["secret"]["secretName"] == "ops"  # the ops KafkaUser's Secret, mounted as a file
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    one(docs, "Service", name)
    one(docs, "PodDisruptionBudget", name)
    monitor = one(docs, "ServiceMonitor", name)
    relabel = {r["targetLabel"]: r["replacement"] for r in monitor["spec"]["endpoints"][0]["relabelings"]}
    assert relabel == {"job": "lag-exporter", "service": "lag-exporter", "tier": "monitoring"}
    policy = one(docs, "NetworkPolicy", name)["spec"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 9092}  # DNS and Kafka, nothing else
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == ["http"]
    assert any(u["metadata"]["name"] == "ops" for u in find(docs, "KafkaUser"))


@pytest.mark.parametrize("sets", [("lagExporter.enabled=false",)])
def test_the_lag_exporter_can_be_left_out(sets: tuple[str, ...]) -> None:
    assert not [d for d in render(*sets) if "lag-exporter" in d["metadata"]["name"]]
