"""The chart's manifests as a new user's tools see them: strict Kubernetes 1.31 schemas
(kubernetes-validate), a static analyser (checkov, with a checked-in list of skipped checks), and
generic rules every workload the chart renders must follow, whoever added it: probes, CPU and
memory limits, a high non-root UID, a read-only root filesystem, a PDB, an HPA when autoscaling
is on, a NetworkPolicy, an explicit namespace."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mymobifone"
CI_VALUES = CHART / "ci" / "test-values.yaml"
HELM = shutil.which("helm") or str(ROOT / ".cache" / "bin" / "helm")
CHECKOV = ROOT / ".cache" / "checkov" / "bin" / "checkov"
SKIPS = Path(__file__).with_name("checkov_skips.yaml")
KUBE = "1.31.0"
RELEASE, NAMESPACE = "rel", "mymobifone"
# Kinds of the operators the chart writes for (Strimzi, Prometheus Operator): no schema in
# kubernetes-validate; their shape is checked by test_helm.py.
CUSTOM_KINDS = {"KafkaUser", "ServiceMonitor", "PrometheusRule"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
MIN_UID = 10000  # below: may collide with a host account (checkov CKV_K8S_40)

pytestmark = pytest.mark.skipif(
    not Path(HELM).is_file(),
    reason="helm is not installed (deploy/local/install.sh helm builds it into .cache/bin)",
)


def render(*sets: str) -> list[dict]:
    args = [
        HELM,
        "template",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--kube-version",
        KUBE,
        "-f",
        str(CI_VALUES),
    ]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return render()


def name_of(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pod_template(doc: dict) -> dict | None:
    """The pod a workload runs (its template), or the Pod itself; None for anything else."""
    if doc["kind"] == "Pod":
        return doc
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    if doc["kind"] in LONG_RUNNING | {"Job"}:
        return doc["spec"]["template"]
    return None


def pods(docs: list[dict]) -> list[tuple[dict, dict]]:
    return [(doc, pod) for doc in docs if (pod := pod_template(doc)) is not None]


def all_containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def selects(selector: dict, labels: dict) -> bool:
    wanted = selector.get("matchLabels", {})
    assert not selector.get("matchExpressions"), "extend selects() for matchExpressions"
    return all(labels.get(key) == value for key, value in wanted.items())


# --- schemas -----------------------------------------------------------------------------------


def test_every_object_passes_strict_kubernetes_schema_validation(manifests: list[dict]) -> None:
    assert len(manifests) >= 42
    kinds = {doc["kind"] for doc in manifests}
    assert kinds & CUSTOM_KINDS == CUSTOM_KINDS, "the CI values render the operators' objects"
    for doc in manifests:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        # Raises on any unknown field (strict), wrong type or missing required field.
        kubernetes_validate.validate(doc, KUBE, strict=True)


def test_strict_validation_catches_an_unknown_field(manifests: list[dict]) -> None:
    """The validator is strict indeed: a typo'd field (which a cluster would silently drop)
    fails."""
    deployment = next(doc for doc in manifests if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE, strict=True)


# --- checkov ---------------------------------------------------------------------------------


def run_checkov(tmp_path: Path) -> list[dict]:
    result = subprocess.run(
        [
            HELM,
            "template",
            RELEASE,
            str(CHART),
            "-n",
            NAMESPACE,
            "--kube-version",
            KUBE,
            "-f",
            str(CI_VALUES),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "chart.yaml").write_text(result.stdout)
    # Offline: no download of the vendor's guidelines or mappings (this machine has no route there).
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_NO_UPDATE": "1"}
    options = ["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "-o", "json"]
    scan = subprocess.run(
        [str(CHECKOV), "-d", "manifests", *options],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    report = json.loads(scan.stdout)
    report = report if isinstance(report, dict) else report[0]
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 700, report["summary"]
    return [
        {"check": failed["check_id"], "resource": failed["resource"]}
        for failed in report["results"]["failed_checks"]
    ]


@pytest.mark.skipif(
    not CHECKOV.is_file(), reason="checkov is not installed (deploy/local/install.sh checkov)"
)
def test_checkov_finds_nothing_beyond_the_listed_skips(tmp_path: Path) -> None:
    skips = yaml.safe_load(SKIPS.read_text())
    assert all(skip["reason"].strip() for skip in skips)
    failed = run_checkov(tmp_path)

    def skipped_by(finding: dict) -> list[int]:
        return [
            index
            for index, skip in enumerate(skips)
            if skip["check"] == finding["check"] and re.search(skip["resource"], finding["resource"])
        ]

    unexplained = [finding for finding in failed if not skipped_by(finding)]
    assert not unexplained, f"fix these or list them with a reason in {SKIPS.name}: {unexplained}"
    used = {index for finding in failed for index in skipped_by(finding)}
    stale = [skip["check"] for index, skip in enumerate(skips) if index not in used]
    assert not stale, f"these skips match no failure any more: remove them from {SKIPS.name}: {stale}"


# --- generic rules for every workload --------------------------------------------------------------


def test_every_namespaced_object_names_the_release_namespace(manifests: list[dict]) -> None:
    for doc in manifests:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == NAMESPACE, name_of(doc)


def test_every_container_has_cpu_and_memory_requests_and_limits(manifests: list[dict]) -> None:
    for doc, pod in pods(manifests):
        for c in all_containers(pod):
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (name_of(doc), c["name"], part)


def test_every_container_runs_as_a_high_non_root_uid_read_only_and_unprivileged(
    manifests: list[dict],
) -> None:
    for doc, pod in pods(manifests):
        pod_context = pod["spec"].get("securityContext", {})
        for c in all_containers(pod):
            context = pod_context | c.get("securityContext", {})
            where = (name_of(doc), c["name"])
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) >= MIN_UID, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


def test_every_long_running_container_has_readiness_and_liveness_probes(manifests: list[dict]) -> None:
    for doc, pod in pods(manifests):
        if doc["kind"] in LONG_RUNNING:
            for c in pod["spec"]["containers"]:
                assert "readinessProbe" in c and "livenessProbe" in c, (name_of(doc), c["name"])


def test_no_secret_travels_as_an_environment_variable(manifests: list[dict]) -> None:
    """Secrets are mounted files (servicekit's SECRETS_DIR, Kafka's password file, the gateway's
    key file): environment variables show in the pod spec, `ps e` and crash dumps."""
    for doc, pod in pods(manifests):
        for c in all_containers(pod):
            for env in c.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), (name_of(doc), env["name"])
            assert not any("secretRef" in source for source in c.get("envFrom", [])), name_of(doc)


def test_every_pod_is_isolated_by_a_network_policy(manifests: list[dict]) -> None:
    policies = [doc for doc in manifests if doc["kind"] == "NetworkPolicy"]
    for doc, pod in pods(manifests):
        labels = pod["metadata"]["labels"]
        matching = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert matching, f"{name_of(doc)}: no NetworkPolicy selects its pods"
        types = {t for p in matching for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, name_of(doc)
        if doc["metadata"].get("annotations", {}).get("helm.sh/hook"):
            # A hook's pods start before the release's plain objects exist: its policy must be
            # a hook created before it.
            assert any(p["metadata"].get("annotations", {}).get("helm.sh/hook") for p in matching), name_of(
                doc
            )


def test_every_long_running_workload_has_a_disruption_budget(manifests: list[dict]) -> None:
    budgets = [doc for doc in manifests if doc["kind"] == "PodDisruptionBudget"]
    for doc, pod in pods(manifests):
        if doc["kind"] in LONG_RUNNING:
            labels = pod["metadata"]["labels"]
            assert any(selects(b["spec"]["selector"], labels) for b in budgets), name_of(doc)


def test_with_autoscaling_on_every_replicated_deployment_has_an_hpa_and_no_fixed_replicas() -> None:
    """A Deployment of more than one replica scales with an HPA (services, gateway); one that
    pins a single replica is a singleton by design (e.g. an exporter) and needs none."""
    docs = render("serviceDefaults.autoscaling.enabled=true", "gateway.autoscaling.enabled=true")
    hpas = {
        doc["spec"]["scaleTargetRef"]["name"]: doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"
    }
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        if deployment["spec"].get("replicas") == 1:
            continue
        assert name in hpas, f"{name}: no HPA with autoscaling enabled"
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        spec = hpas[name]["spec"]
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"], name
    assert {name for name in hpas} <= {d["metadata"]["name"] for d in deployments}


def test_an_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    docs = render(f"services.account.image.digest={digest}", f"gateway.image.digest={digest}")
    images = {
        (doc["metadata"]["name"], c["name"]): c["image"]
        for doc, pod in pods(docs)
        for c in all_containers(pod)
    }
    assert images[(f"{RELEASE}-mymobifone-account", "account")] == (
        f"registry.example.com/mymobifone/account-service@{digest}"
    )
    assert images[(f"{RELEASE}-mymobifone-gateway", "nginx")] == f"nginxinc/nginx-unprivileged@{digest}"
    assert images[(f"{RELEASE}-mymobifone-gateway", "keys")] == f"nginxinc/nginx-unprivileged@{digest}"
    assert images[(f"{RELEASE}-mymobifone-vas", "vas")].endswith("vas-service:0.1.0")  # tag fallback
