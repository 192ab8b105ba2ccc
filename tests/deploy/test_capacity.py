"""The capacity model (deploy/helm/capacity.py) and the chart's defaults that carry it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml

from mobi_contracts import CONSUMER_GROUPS, TOPICS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mymobifone"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
README = (CHART / "README.md").read_text()


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "helm" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


capacity = load("capacity")
shard_keys = load("shard_keys")


def test_the_charts_topic_defaults_are_the_models() -> None:
    assert VALUES["topics"]["partitions"] == capacity.partitions()
    assert VALUES["topics"]["retentionHours"] == capacity.RETENTION_HOURS
    assert VALUES["topics"]["replicationFactor"] == capacity.REPLICATION_FACTOR


def test_the_charts_hpa_bounds_are_the_models() -> None:
    wanted = capacity.hpa_max_replicas()
    assert set(wanted) == set(VALUES["services"])
    for service, maximum in wanted.items():
        own = VALUES["services"][service].get("autoscaling", {})
        effective = {**VALUES["serviceDefaults"]["autoscaling"], **own}
        assert effective["maxReplicas"] == maximum, service
        assert effective["minReplicas"] == capacity.MIN_REPLICAS, service
        assert effective["targetCPUUtilizationPercentage"] == round(capacity.TARGET_UTILISATION * 100)
    assert VALUES["gateway"]["autoscaling"]["maxReplicas"] == capacity.gateway_max_replicas()


def test_no_consumer_may_scale_past_a_partition_per_member() -> None:
    """More members than partitions sit idle; partitions come in whole rounds of brokers."""
    partitions = capacity.partitions()
    assert partitions % capacity.BROKERS == 0
    for service, maximum in capacity.hpa_max_replicas().items():
        assert maximum * capacity.MEMBERS_PER_REPLICA <= partitions, service
    busiest = max(capacity.peak_replicas().values())
    assert partitions >= busiest * capacity.MEMBERS_PER_REPLICA * capacity.PARTITION_HEADROOM


def test_replicas_follow_the_measured_rates() -> None:
    """The formula itself: the peak over what a replica does at the HPA's target, at least two."""
    rates = capacity.peak_rates()
    ledger = capacity.MEASURED["ledger"].rate
    assert capacity.peak_replicas()["account"] == max(
        2, math.ceil(rates["decisions"] / (ledger * capacity.TARGET_UTILISATION)), capacity.api_replicas()
    )
    assert capacity.replicas_for(0, 100) == capacity.MIN_REPLICAS
    assert capacity.replicas_for(700, 100) == 10


def test_every_consumer_group_and_every_busy_topic_is_in_the_model() -> None:
    assert {g.service for g in capacity.groups()} == {
        g.owner.removesuffix("-service")
        for g in CONSUMER_GROUPS  # a service's groups share its replicas
    }
    declared = {t.name for t in TOPICS}
    assert set(capacity.topic_rates()) <= declared
    for event in capacity.EVENT_BYTES:
        example = sorted((ROOT / "contracts" / "examples" / event).glob("v*.json"))[-1]
        compact = json.dumps(json.loads(example.read_text()), separators=(",", ":"))
        assert capacity.EVENT_BYTES[event] == len(compact), f"{event}: the example's size changed"


def test_every_collection_of_every_service_has_a_shard_key() -> None:
    for service, keys in shard_keys.SHARD_KEYS.items():
        store = importlib.import_module(f"{service}_service.store")
        assert set(keys) == set(store.INDEXES), service
        for collection, (key, why) in keys.items():
            assert why, (service, collection)
            assert key == "unsharded" or re.fullmatch(r"\{[a-z_]+: (hashed|1)(, [a-z_]+: 1)?\}", key), key


def test_the_readme_shows_the_models_figures() -> None:
    """The chart README's capacity section is the model's report, not a stale copy."""
    assert capacity.report() in README, "paste `python deploy/helm/capacity.py` into the chart README"
