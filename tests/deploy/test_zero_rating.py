"""The zero-rated host in the chart: what is published for the carrier is what the chart really
serves (host, addresses, ports, paths), and docs/zero-rating.md is that list."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mymobifone"
CI_VALUES = CHART / "ci" / "test-values.yaml"
HELM = shutil.which("helm") or str(ROOT / ".cache" / "bin" / "helm")
RELEASE, NAMESPACE = "mymobifone", "mymobifone"  # as zero_rating.py renders the docs' list
PREFIX = "mymobifone"  # the release name holds the chart's: no repetition

pytestmark = pytest.mark.skipif(not Path(HELM).is_file(), reason="helm is not installed")


def load_zero_rating() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zero_rating", ROOT / "deploy" / "helm" / "zero_rating.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def helm_template(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [HELM, "template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", "1.31.0"]
    args += ["-f", str(CI_VALUES)]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def render(*sets: str) -> list[dict]:
    result = helm_template(*sets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict], kind: str, name: str) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def locations(conf: str) -> dict[tuple[str, str], str]:
    """The routes' location blocks of nginx.conf: (match, path) -> the block's body."""
    ops = {"=": "exact", "^~": "prefix", "~": "regex"}
    found = {}
    for op, path, body in re.findall(r"\n        location (=|\^~|~) (\S+) \{\n(.*?)\n        \}", conf, re.S):
        if path.startswith(("/api/", "^/api/")):
            found[(ops[op], path)] = body
    return found


def test_the_published_list_is_what_the_gateway_serves_on_the_zero_rated_host() -> None:
    docs = render()
    listing = json.loads(one(docs, "ConfigMap", f"{PREFIX}-zero-rating")["data"]["zero-rating.json"])
    values = yaml.safe_load(CI_VALUES.read_text())["zeroRating"]
    assert listing["host"] == values["host"] == "app-api.mobifone.vn"
    # The addresses and ports: the zero-rated Service's.
    service = one(docs, "Service", listing["service"])
    assert service["spec"]["type"] == "LoadBalancer"
    assert [service["spec"]["loadBalancerIP"]] == listing["addresses"] == values["addresses"]
    assert [p["port"] for p in service["spec"]["ports"]] == listing["ports"]
    [service_port] = service["spec"]["ports"]
    # ... reaching the gateway's zero-rated listener, which answers that host only.
    gateway = one(docs, "Deployment", f"{PREFIX}-gateway")
    [nginx] = [c for c in gateway["spec"]["template"]["spec"]["containers"] if c["name"] == "nginx"]
    ports = {p["name"]: p["containerPort"] for p in nginx["ports"]}
    assert service_port["targetPort"] == "zero-rated"
    assert service["spec"]["selector"].items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    conf = one(docs, "ConfigMap", f"{PREFIX}-gateway")["data"]["nginx.conf"]
    assert f"        listen {ports['zero-rated']};  # zero-rated" in conf
    port_map = (
        f"    map $server_port $gw_zero_rated {{\n        default 0;\n        {ports['zero-rated']} 1;\n"
    )
    assert port_map in conf
    assert f'        "~^1:" 1;\n        "1:{listing["host"]}" 0;\n' in conf
    # The published paths: exactly the routes not refused on the zero-rated listener.
    served = {key for key, body in locations(conf).items() if "if ($gw_zero_rated)" not in body}
    published = {(r["match"], r["path"]) for r in listing["routes"]}
    assert published == served
    assert ("prefix", "/api/v1/payments/") in set(locations(conf)) - served  # the provider's callbacks


def test_the_zero_rated_port_is_open_to_the_gateways_clients() -> None:
    policy = one(render(), "NetworkPolicy", f"{PREFIX}-gateway")["spec"]
    assert {"port": "zero-rated", "protocol": "TCP"} in policy["ingress"][0]["ports"]


def test_docs_zero_rating_is_the_list_the_ci_values_publish() -> None:
    module = load_zero_rating()
    text = (ROOT / "docs" / "zero-rating.md").read_text()
    generated = text.split(module.BEGIN + "\n", 1)[1].split(module.END, 1)[0]
    listing = module.published([CI_VALUES])
    assert generated == module.markdown(listing), "run deploy/helm/zero_rating.py --update-docs"
    assert "`/api/v1/me/balances`" in generated and "/api/v1/payments/" not in generated


def test_without_zero_rating_there_is_no_second_listener_service_or_list() -> None:
    docs = render("zeroRating.enabled=false")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Service", f"{PREFIX}-gateway-zero-rated") not in names
    assert ("ConfigMap", f"{PREFIX}-zero-rating") not in names
    conf = one(docs, "ConfigMap", f"{PREFIX}-gateway")["data"]["nginx.conf"]
    assert "zero-rated:" not in conf and '"1:' not in conf


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("zeroRating.host=App-API.example",), "expected a lower-case host name"),
        (("zeroRating.host=",), "expected a lower-case host name"),
        (("zeroRating.port=8080",), "zeroRating.port must differ from gateway.port"),
        (("zeroRating.addresses={app-api.mobifone.vn}",), "is not an IP address"),
    ],
)
def test_bad_zero_rating_values_fail_the_render(sets: tuple[str, ...], message: str) -> None:
    result = helm_template(*sets)
    assert result.returncode != 0 and message in result.stderr
