"""The Grafana dashboards (deploy/grafana -> the chart's files/dashboards): valid PromQL, only
metrics the platform exports, up to date, and shipped as sidecar ConfigMaps by the chart."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .dashboards_support import (
    COMPONENT_METRICS,
    GRAFANA,
    ROOT,
    dashboards_module,
    declared_in,
    exported_metrics,
    metric_names,
    recorded_metrics,
)
from .test_helm import PREFIX, find, render

dashboards = dashboards_module()
FILES = ROOT / "deploy" / "helm" / "mymobifone" / "files" / "dashboards"
UNITS = {"short", "reqps", "ops", "s", "percentunit"}


def every_query() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expression) of every query of every dashboard."""
    return [
        (d.uid, panel.title, query.expr)
        for d in dashboards.dashboards()
        for panel in d.panels()
        for query in panel.queries
    ]


def test_there_is_an_overview_and_one_dashboard_per_service() -> None:
    uids = {d.uid for d in dashboards.dashboards()}
    services = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert uids == {"mymobifone-overview"} | {f"mymobifone-{s}" for s in services}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """Each expression as a recording rule: promtool parses and checks them all."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr, "labels": {"dashboard": uid}}
        for i, (uid, _, expr) in enumerate(every_query())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_an_invalid_query_is_caught_by_the_promql_check(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    bad = {"record": "dashboard:bad", "expr": "sum by (service (rate(http_requests_total[5m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [bad]}]}))
    assert subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True).returncode != 0


def known_metrics() -> set[str]:
    return exported_metrics() | recorded_metrics() | COMPONENT_METRICS


def unknown_metrics(queries: list[tuple[str, str, str]]) -> dict[tuple[str, str], set[str]]:
    known = known_metrics()
    found = {(uid, title): metric_names(expr) - known for uid, title, expr in queries}
    return {key: names for key, names in found.items() if names}


def test_panels_name_only_metrics_the_platform_exports() -> None:
    assert unknown_metrics(every_query()) == {}


def test_a_panel_naming_a_metric_nobody_exports_is_caught() -> None:
    made_up = [
        ("mymobifone-overview", "typo", 'sum by (service) (rate(http_request_total{service="x"}[5m]))')
    ]
    assert unknown_metrics(made_up) == {("mymobifone-overview", "typo"): {"http_request_total"}}


def test_the_exported_names_come_from_the_codes_declarations() -> None:
    """The collector sees literal names, module constants and the client's suffixes."""
    source = (
        'from prometheus_client import Counter, Histogram\nLAG = "x_lag"\n'
        'A = Counter("a_total", "")\nB = Counter("b", "")\nC = Histogram("c_seconds", "")\n'
        'D = GaugeMetricFamily(LAG, "")\n'
    )
    assert declared_in(source) == {
        "a_total",
        "b_total",
        "c_seconds_bucket",
        "c_seconds_sum",
        "c_seconds_count",
        "x_lag",
    }
    names = exported_metrics()
    assert {
        "http_requests_total",
        "outbox_oldest_pending_seconds",
        "kafka_consumergroup_lag",
        "push_sends_total",
    } <= names


def test_fallbacks_to_zero_are_only_on_panels_of_rare_events_and_say_why() -> None:
    for d in dashboards.dashboards():
        for panel in d.panels():
            falls_back = any("vector(0)" in query.expr for query in panel.queries)
            assert falls_back == panel.rare, (d.uid, panel.title)
            if panel.rare:
                assert "exist only once" in panel.description, (d.uid, panel.title)


def test_every_panel_has_a_title_description_unit_and_unique_id() -> None:
    for d in dashboards.dashboards():
        data = json.loads((FILES / f"{d.uid}.json").read_text())
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids)), d.uid
        for panel in data["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["title"] and panel["description"], (d.uid, panel)
            assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, (d.uid, panel["title"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_the_committed_dashboards_are_what_the_code_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "dashboards.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_the_chart_ships_each_dashboard_in_a_configmap_for_the_grafana_sidecar() -> None:
    docs = render()
    shipped = {}
    for cm in find(docs, "ConfigMap"):
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1":
            assert cm["metadata"]["name"].startswith(f"{PREFIX}-dashboard-")
            assert cm["metadata"]["annotations"]["grafana_folder"] == "My MobiFone"
            [(name, text)] = cm["data"].items()
            shipped[name] = json.loads(text)
    assert shipped == {p.name: json.loads(p.read_text()) for p in FILES.glob("*.json")}
    assert not [
        cm
        for cm in find(render("dashboards.enabled=false"), "ConfigMap")
        if "dashboard-" in cm["metadata"]["name"]
    ]
