"""After the rest of the suite (named to sort last, marked `last`): every query of every
dashboard returns data on the local Prometheus, over a range that covers the suite (from
Prometheus' start, at most six hours back). A panel whose series never appeared is a panel an
SRE would find empty: a wrong metric or label, or a flow the suite never exercises."""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.last]

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = f"http://127.0.0.1:{os.environ.get('PROMETHEUS_PORT', '9090')}"
MAX_RANGE = 6 * 3600
POINTS = 500  # per query: enough to see any series that existed in the range


def dashboards() -> list:
    sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
    try:
        return importlib.import_module("dashboards").dashboards()
    finally:
        sys.path.remove(str(ROOT / "deploy" / "grafana"))


def suite_range(client: httpx.Client) -> tuple[float, float]:
    answer = client.get("/api/v1/query", params={"query": 'process_start_time_seconds{job="prometheus"}'})
    [started] = answer.json()["data"]["result"]
    end = time.time()
    return max(float(started["value"][1]), end - MAX_RANGE), end


def test_every_dashboard_query_returns_data_after_the_suite() -> None:
    with httpx.Client(base_url=PROMETHEUS, timeout=30, trust_env=False) as client:
        start, end = suite_range(client)
        step = max(15.0, (end - start) / POINTS)
        empty = []
        queried = 0
        for dashboard in dashboards():
            for panel in dashboard.panels():
                for query in panel.queries:
                    params = {"query": query.expr, "start": start, "end": end, "step": step}
                    body = client.get("/api/v1/query_range", params=params).json()
                    assert body["status"] == "success", (dashboard.uid, panel.title, body)
                    queried += 1
                    if not any(series["values"] for series in body["data"]["result"]):
                        empty.append(f"{dashboard.uid} / {panel.title}: {query.expr}")
    assert queried > 100
    assert empty == [], "queries without data:\n" + "\n".join(empty)
