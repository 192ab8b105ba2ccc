"""What the dashboard tests share: the generated dashboards, the metric names the code exports
and the metric names a PromQL expression reads."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus" / "rules"
CODE_ROOTS = ("libs", "services", "sandboxes", "tools")
# What the platform's components export besides our code: Prometheus' own `up` for every target.
COMPONENT_METRICS = {"up"}
SUFFIXES = {
    "Counter": ("_total",),
    "CounterMetricFamily": ("_total",),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
    "SummaryMetricFamily": ("_sum", "_count"),
}


def dashboards_module() -> ModuleType:
    if str(GRAFANA) not in sys.path:
        sys.path.insert(0, str(GRAFANA))
    return importlib.import_module("dashboards")


def _string_constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def declared_in(source: str) -> set[str]:
    """Series names of the prometheus_client metrics a module declares (the name given as a
    literal or a module-level constant), with the suffixes the client adds."""
    tree = ast.parse(source)
    constants = _string_constants(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if kind not in SUFFIXES:
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            name = first.value
        elif isinstance(first, ast.Name) and first.id in constants:
            name = constants[first.id]
        else:
            continue
        for suffix in SUFFIXES[kind]:
            base = name.removesuffix("_total") if suffix == "_total" else name
            names.add(base + suffix)
    return names


def code_files(*roots: Path) -> Iterator[Path]:
    for root in roots or tuple(ROOT / r for r in CODE_ROOTS):
        for path in root.rglob("*.py"):
            if "tests" not in path.relative_to(ROOT).parts and ".venv" not in path.parts:
                yield path


def exported_metrics(*roots: Path) -> set[str]:
    names: set[str] = set()
    for path in code_files(*roots):
        names |= declared_in(path.read_text())
    return names


def rules() -> list[dict]:
    found = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def recorded_metrics() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


PROMQL_WORDS = {
    "offset",
    "and",
    "or",
    "unless",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers, ranges
    tokens = set(re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return tokens - PROMQL_WORDS
