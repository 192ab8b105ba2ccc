"""Grafana dashboard JSON from a small model: dashboards of rows of panels of PromQL queries.

Only what our dashboards use: time series and stat panels, rows, a Prometheus data source
chosen by a variable (the sidecar-loaded dashboards must not name one installation's data
source). Grafana's schema: https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24  # Grafana's grid
PANEL_HEIGHT = 8


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    description: str
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    # Its series exist only after rare events (a dead letter, a lock-out): the query falls back
    # to `or vector(0)`, and the description says so.
    rare: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("mymobifone",)

    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels


def q(expr: str, legend: str = "") -> Query:
    """A query, its expression stripped of the indentation of a multi-line literal."""
    return Query(" ".join(expr.split()), legend)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict[str, Any]:
    targets = [
        {
            "refId": chr(ord("A") + i),
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "datasource": DATASOURCE,
        }
        for i, query in enumerate(panel.queries)
    ]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }
    return body


def to_json(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for row in dashboard.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
            }
        )
        next_id, y = next_id + 1, y + 1
        per_line = min(3, len(row.panels)) or 1
        width = WIDTH // per_line
        for i, panel in enumerate(row.panels):
            x = (i % per_line) * width
            if i and i % per_line == 0:
                y += PANEL_HEIGHT
            panels.append(_panel_json(panel, next_id, x, y, width))
            next_id += 1
        y += PANEL_HEIGHT
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "title": "My MobiFone",
                "tags": ["mymobifone"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


# --- PromQL the dashboards repeat ---------------------------------------------------------

RARE = " Its series exist only once such an event happened: `or vector(0)` shows 0 until then."


def series(metric: str, selector: str = "") -> str:
    return f"{metric}{{{selector}}}" if selector else metric


def rate(metric: str, by: str, selector: str = "", window: str = "5m") -> str:
    return f"sum by ({by}) (rate({series(metric, selector)}[{window}]))"


def p99(metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({series(metric + '_bucket', selector)}[5m])))"


def rare_count(metric: str, by: str, selector: str = "", window: str = "1h") -> str:
    return f"sum by ({by}) (increase({series(metric, selector)}[{window}])) or vector(0)"
