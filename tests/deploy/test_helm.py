"""The Helm chart (deploy/helm/mymobifone): lint, render, and check what the manifests say."""

from __future__ import annotations

import base64
import importlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicekit.internal_keys import KNOWN_CALLERS
from servicekit.settings import KitSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mymobifone"
CI_VALUES = CHART / "ci" / "test-values.yaml"
HELM = shutil.which("helm") or str(ROOT / ".cache" / "bin" / "helm")
SERVICES = ("account", "vas", "payment", "loyalty", "notify", "stores")
KUBE = "1.30.0"
RELEASE, NAMESPACE = "rel", "mm"
PREFIX = f"{RELEASE}-mymobifone"
# Callers of /internal routes whose keys the Secret holds with the default values.
CALLERS = (
    "account",
    "vas",
    "payment",
    "loyalty",
    "notify",
    "stores",
    "ops",
    "campaign-tools",
)
# Content providers, each with its own key for the VAS partner route (no shared partner key).
PROVIDERS = (
    "gamevui",
    "mobifone",
    "mobifone-cloud",
    "mobifone-funring",
    "mobitv",
    "tuvi-online",
    "vmusic",
    "vnews",
)


def made_up_secrets() -> dict:
    """Values for the chart-created Secret, made up per test run: the repository ships none (a
    committed key would work for anyone deploying with it). The JWT keys are placeholders: the
    chart does not parse them."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    extra_keys = {key for svc in values["services"].values() for key in (svc.get("secretEnv") or {}).values()}
    extra = {key: secrets.token_urlsafe(32) for key in extra_keys}
    extra["smsc-password"] = secrets.token_hex(4)  # SMPP v3.4: at most 8 characters
    placeholder = "-----BEGIN {0}-----\nnot-a-key-test-placeholder\n-----END {0}-----\n"
    return {
        "secrets": {
            "existingSecret": "",
            "mongodbUrl": f"mongodb://mymobifone:{secrets.token_urlsafe(24)}@mongo-0.mongo.data.svc:27017/",
            "redisUrl": f"redis://:{secrets.token_urlsafe(24)}@redis-master.data.svc:6379/0",
            "jwtPublicKey": placeholder.format("PUBLIC KEY"),
            "jwtPrivateKey": placeholder.format("PRIVATE KEY"),
            "extra": extra,
        }
    }


TEST_SECRETS = made_up_secrets()
SECRET_VALUES = Path(tempfile.mkdtemp(prefix="helm-test-secrets-")) / "secrets.yaml"
SECRET_VALUES.write_text(yaml.safe_dump(TEST_SECRETS))

pytestmark = pytest.mark.skipif(
    not Path(HELM).is_file(),
    reason="helm is not installed (deploy/local/install.sh helm builds it into .cache/bin)",
)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def value_args(values: Path | tuple[Path, ...] | None) -> list[str]:
    files = (values,) if isinstance(values, Path) else values or ()
    return [arg for path in files for arg in ("-f", str(path))]


# By default: the CI values with the chart creating the Secret from TEST_SECRETS.
DEFAULT_VALUES = (CI_VALUES, SECRET_VALUES)


def render(*sets: str, values: Path | tuple[Path, ...] | None = DEFAULT_VALUES) -> list[dict]:
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE, *value_args(values)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(*sets: str, values: Path | tuple[Path, ...] | None = DEFAULT_VALUES) -> str:
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBE, *value_args(values)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode != 0, "the render should have failed"
    return result.stderr


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    [doc] = find(docs, kind, name)
    return doc


def nginx_conf(docs: list[dict]) -> str:
    return one(docs, "ConfigMap", f"{PREFIX}-gateway")["data"]["nginx.conf"]


def container(deployment: dict, name: str) -> dict:
    [c] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def env_of(c: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def volume(deployment: dict, name: str) -> dict:
    [v] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return v


def secret_files(deployment: dict, volume_name: str = "secrets") -> dict[str, tuple[str, str]]:
    """A Secret volume's files: path -> (Secret, key)."""
    secret = volume(deployment, volume_name)["secret"]
    return {item["path"]: (secret["secretName"], item["key"]) for item in secret["items"]}


# --- lint and validation -----------------------------------------------------------------------


@pytest.mark.parametrize("values", [CI_VALUES, DEFAULT_VALUES], ids=["existing-secret", "created-secret"])
def test_lint_with_complete_values(values: Path | tuple[Path, ...]) -> None:
    result = helm("lint", str(CHART), *value_args(values), "--kube-version", KUBE, "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("kafka.bootstrap=",), "kafka.bootstrap is required"),
        (("secrets.mongodbUrl=",), "secrets.mongodbUrl is required"),
        (("services.billing.enabled=true",), "services.billing: unknown service"),
        (("services.account.secretEnv.NEW=missing-key",), "secretEnv.NEW needs secrets.extra.missing-key"),
        # (whichever caller of account comes first: loyalty, payment, vas)
        (("services.account.enabled=false",), ".calls: account is not enabled"),
        (("gateway.carrierProxyCidrs={0.0.0.0/0}",), "would match every address"),
        (("gateway.carrierProxyCidrs={10.0.0.0/33}",), "is not an address/prefix"),
        (("gateway.rate=fast",), "expected e.g. 20 or 20r/s"),
        # Secrets: empty, laptop/example defaults, short, shared, or the old single keys.
        (("secrets.extra.otp-pepper=",), "secrets.extra.otp-pepper is empty"),
        (
            ("secrets.extra.otp-pepper=local-otp-pepper-change-me-0123456789",),
            "otp-pepper is a known default",
        ),
        (("secrets.extra.provider-hash-secret=sandbox-hash-secret-change-me",), "is a known default"),
        (("secrets.extra.scratch-pin-pepper=Example-Pepper-0123456789-0123456789",), "is a known default"),
        (
            ("secrets.extra.provider-hash-secret=short-secret",),
            "provider-hash-secret is shorter than 32 bytes",
        ),
        (
            ("secrets.gatewayKeys.account=local-gateway-key-account-service",),
            "gatewayKeys.account is a known",
        ),
        (("secrets.gatewayKeys.payment=compose-gateway-key-payment-0123456789",), "is a known default"),
        (("secrets.internalKeys.ops=tooShort0123",), "internalKeys.ops is shorter than 32 bytes"),
        (
            ("secrets.gatewayKeys.account=" + "a" * 40, "secrets.gatewayKeys.payment=" + "a" * 40),
            "each service and caller needs its own",
        ),
        (("secrets.internalKeys.ops=" + "x" * 36 + '"',), "only A-Z a-z 0-9"),
        (("secrets.gatewayKey=" + "k" * 40,), "secrets.gatewayKey is gone"),
        (("secrets.internalKey=" + "k" * 40,), "secrets.internalKey is gone"),
        (("config.ENVIRONMENT=local",), 'config.ENVIRONMENT must be set and not "local"'),
        (("config.ENVIRONMENT=",), "config.ENVIRONMENT must be set"),
        (("services.vas.env.ENVIRONMENT=local",), "config.ENVIRONMENT must be set"),
        (("services.account.internalCallers={billing-service}",), 'unknown caller "billing-service"'),
    ],
)
def test_bad_values_fail_with_a_clear_message(sets: tuple[str, ...], message: str) -> None:
    assert message in render_error(*sets)


def test_default_values_alone_are_refused() -> None:
    assert "kafka.bootstrap is required" in render_error(values=None)


def test_ci_values_ship_no_usable_secret() -> None:
    """The CI values are public: they name an existing Secret and hold no key at all."""
    ci = yaml.safe_load(CI_VALUES.read_text())
    assert ci["secrets"] == {"existingSecret": "mymobifone-ci-secrets"}
    for path in (CHART / "ci").rglob("*"):
        if path.is_file():
            assert "-----BEGIN" not in path.read_text(), path
    docs = render(values=CI_VALUES)
    assert not find(docs, "Secret")
    files = secret_files(one(docs, "Deployment", f"{PREFIX}-account"))
    assert files["gateway_key"] == ("mymobifone-ci-secrets", "gateway-key-account")


def test_an_smsc_password_may_be_short_but_not_a_default() -> None:
    """SMPP v3.4 passwords have at most 8 characters: exempt from the length rule only."""
    render("secrets.extra.smsc-password=Xy7#kQ2p")
    assert "smsc-password is a known default" in render_error("secrets.extra.smsc-password=local-pw")
    assert "smsc-password is empty" in render_error("secrets.extra.smsc-password=")


def test_services_run_outside_the_local_profile_so_they_refuse_defaults_themselves() -> None:
    config = one(render(), "ConfigMap", f"{PREFIX}-config")["data"]
    assert config["ENVIRONMENT"] == "production"


def test_the_charts_callers_are_the_kits() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    [known] = re.findall(r'define "mymobifone.knownCallers" -}}\n(.*)\n', helpers)
    assert known.split() == list(KNOWN_CALLERS)


# --- services ----------------------------------------------------------------------------------


def test_each_service_has_deployment_service_and_pdb() -> None:
    docs = render()
    for name in SERVICES:
        deployment = one(docs, "Deployment", f"{PREFIX}-{name}")
        service = one(docs, "Service", f"{PREFIX}-{name}")
        pdb = one(docs, "PodDisruptionBudget", f"{PREFIX}-{name}")
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert labels["app.kubernetes.io/component"] == name
        assert service["spec"]["selector"] == labels
        assert service["spec"]["ports"][0]["port"] == 8000
        assert pdb["spec"]["selector"]["matchLabels"] == labels
        assert pdb["spec"]["maxUnavailable"] == 1
        assert deployment["spec"]["replicas"] == 2
    assert not find(docs, "HorizontalPodAutoscaler")


def test_service_pods_probe_health_and_ready_and_read_config_and_secrets() -> None:
    docs = render()
    secret = f"{PREFIX}-secrets"
    for name in SERVICES:
        deployment = one(docs, "Deployment", f"{PREFIX}-{name}")
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment, name)
        assert c["image"] == f"registry.example.com/mymobifone/{name}-service:0.1.0"
        assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["startupProbe"]["httpGet"]["path"] == "/health"
        assert c["resources"]["requests"]["cpu"] == "100m"
        assert c["resources"]["limits"]["memory"] == "512Mi"
        assert c["resources"]["limits"]["cpu"] == "1"  # one Python process: one core at most
        assert c["envFrom"] == [{"configMapRef": {"name": f"{PREFIX}-config"}}]
        env = env_of(c)
        assert env["SERVICE_NAME"] == f"{name}-service"
        assert env["HTTP_HOST"] == "0.0.0.0"
        # Secrets as files of SECRETS_DIR, one per settings field.
        assert env["SECRETS_DIR"] == "/etc/mymobifone/secrets"
        assert {"name": "secrets", "mountPath": "/etc/mymobifone/secrets", "readOnly": True} in c[
            "volumeMounts"
        ]
        files = secret_files(deployment)
        for path, key in [
            ("mongodb_url", "mongodb-url"),
            ("redis_url", "redis-url"),
            ("gateway_key", f"gateway-key-{name}"),  # its own, never another service's
            ("internal_key", f"internal-key-{name}"),
        ]:
            assert files[path] == (secret, key)
        assert env["JWT_PUBLIC_KEY_FILE"] == "/etc/mymobifone/jwt/jwt-public-key.pem"
        assert ("JWT_PRIVATE_KEY_FILE" in env) == (name == "account")
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"] for v in pod["volumes"]}
        assert ("jwt-private" in volumes) == (name == "account")
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert "checksum/config" in annotations
        assert "checksum/secret" in annotations
    config = one(docs, "ConfigMap", f"{PREFIX}-config")["data"]
    assert config["KAFKA_BOOTSTRAP"].startswith("kafka-0.kafka.data.svc:9092")
    payment = env_of(container(one(docs, "Deployment", f"{PREFIX}-payment"), "payment"))
    assert payment["ACCOUNT_INTERNAL_URL"] == f"http://{PREFIX}-account.{NAMESPACE}.svc:8000"
    assert "PROVIDER_HASH_SECRET" not in payment
    payment_files = secret_files(one(docs, "Deployment", f"{PREFIX}-payment"))
    assert payment_files["provider_hash_secret"] == (secret, "provider-hash-secret")


def prestop_sleep_seconds(c: dict) -> float:
    """The container's preStop sleep, as an exec of sleep or as Kubernetes' sleep action."""
    pre_stop = (c.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = (pre_stop.get("exec") or {}).get("command") or []
    assert not command or command[0] == "sleep", command
    return float(command[1]) if command else 0.0


def shutdown_budget(env: dict[str, object]) -> float:
    """The kit's drain budget (KitSettings), with any stage the chart overrides in the env."""
    stages = (
        "shutdown_delay_seconds",
        "shutdown_http_seconds",
        "shutdown_batch_seconds",
        "shutdown_flush_seconds",
    )
    total = 0.0
    for stage in stages:
        value = env.get(stage.upper())
        total += float(value) if isinstance(value, str) else float(KitSettings.model_fields[stage].default)
    return total


@pytest.mark.parametrize(
    "sets", [(), ("services.vas.preStopSleepSeconds=8", "services.vas.terminationGracePeriodSeconds=40")]
)
def test_the_grace_period_covers_the_prestop_sleep_and_the_services_drain_budget(
    sets: tuple[str, ...],
) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after it starts stopping it: the
    preStop sleep, then SIGTERM and the kit's drain (servicekit.shutdown), which
    tests/platform/test_graceful_shutdown.py measures and bounds by the same budget."""
    assert KitSettings.shutdown_budget_seconds() == shutdown_budget({})
    docs = render(*sets)
    for name in SERVICES:
        deployment = one(docs, "Deployment", f"{PREFIX}-{name}")
        c = container(deployment, name)
        sleep = prestop_sleep_seconds(c)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert sleep > 0, f"{name}: no preStop sleep: endpoints would still send it requests"
        assert grace >= sleep + shutdown_budget(env_of(c)), (name, grace, sleep)


def test_a_grace_period_shorter_than_the_drain_would_be_caught() -> None:
    docs = render("services.account.terminationGracePeriodSeconds=20")
    deployment = one(docs, "Deployment", f"{PREFIX}-account")
    c = container(deployment, "account")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace < prestop_sleep_seconds(c) + shutdown_budget(env_of(c))


def secret_data(docs: list[dict]) -> dict[str, str]:
    data = one(docs, "Secret", f"{PREFIX}-secrets")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_secret_holds_every_key_and_configmaps_hold_none() -> None:
    docs = render()
    data = secret_data(docs)
    assert set(data) == {
        "mongodb-url",
        "redis-url",
        "jwt-public-key",
        "jwt-private-key",
        *(f"gateway-key-{name}" for name in SERVICES),
        *(f"internal-key-{caller}" for caller in CALLERS),
        *(f"provider-key-{provider}" for provider in PROVIDERS),
        *TEST_SECRETS["secrets"]["extra"],
    }
    keys = [data[f"gateway-key-{name}"] for name in SERVICES] + [data[f"internal-key-{c}"] for c in CALLERS]
    keys += [data[f"provider-key-{p}"] for p in PROVIDERS]
    assert len(set(keys)) == len(keys), "every service and caller has its own key"
    assert all(len(key) == 48 for key in keys)  # generated: none given
    for config_map in find(docs, "ConfigMap"):
        text = yaml.safe_dump(config_map)
        for value in (*keys, *TEST_SECRETS["secrets"]["extra"].values()):
            assert value not in text, config_map["metadata"]["name"]


def test_given_keys_are_used_for_their_service_or_caller_only() -> None:
    account, ops = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    data = secret_data(render(f"secrets.gatewayKeys.account={account}", f"secrets.internalKeys.ops={ops}"))
    assert data["gateway-key-account"] == account
    assert data["internal-key-ops"] == ops
    assert account not in {v for k, v in data.items() if k != "gateway-key-account"}


SETTINGS = {
    "account": "account_service.settings:AccountSettings",
    "vas": "vas_service.settings:VasSettings",
    "payment": "payment_service.settings:PaymentSettings",
    "loyalty": "loyalty_service.settings:LoyaltySettings",
    "notify": "notify_service.settings:NotifySettings",
    "stores": "stores_service.settings:StoresSettings",
}


def settings_from_pod(docs: list[dict], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's own settings class, loaded as in the pod: its SECRETS_DIR holding the files
    the chart's Secret volume mounts (values from the Secret's data), its plain environment
    (the config ConfigMap, then the container's env)."""
    deployment = one(docs, "Deployment", f"{PREFIX}-{name}")
    data = secret_data(docs)
    directory = tmp_path / name
    for path, (_, key) in secret_files(deployment).items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(data[key])
    for variable in list(os.environ):
        monkeypatch.delenv(variable)
    env = dict(one(docs, "ConfigMap", f"{PREFIX}-config")["data"])
    env |= {k: v for k, v in env_of(container(deployment, name)).items() if isinstance(v, str)}
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("SECRETS_DIR", str(directory))
    module, cls = SETTINGS[name].split(":")
    settings_cls = getattr(importlib.import_module(module), cls)
    # The files the pod mounts from other Secrets (Kafka's password, the JWT key) are other tests'.
    kafka_password = tmp_path / f"{name}-kafka-password"
    kafka_password.write_text(secrets.token_urlsafe(32))
    return settings_cls(jwt_public_key_file=None, kafka_password_file=kafka_password)


def test_each_service_reads_its_own_keys_and_its_callers_keys_from_the_mounted_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render()
    data = secret_data(docs)
    accepted = {}
    for name in SERVICES:
        settings = settings_from_pod(docs, name, tmp_path, monkeypatch)
        assert settings.environment == "production"
        assert settings.mongodb_url == data["mongodb-url"]
        assert settings.own_gateway_key == data[f"gateway-key-{name}"]
        assert settings.own_internal_key == data[f"internal-key-{name}"]
        accepted[name] = settings.accepted_internal_keys
        for caller, key in accepted[name].items():
            assert key == data[f"internal-key-{caller.removesuffix('-service')}"], (name, caller)
        if name == "vas":
            keys = {p: k.get_secret_value() for p, k in settings.content_provider_keys.items()}
            assert keys == {p: data[f"provider-key-{p}"] for p in PROVIDERS}
            assert len(set(keys.values())) == len(PROVIDERS)
        if name == "account":
            assert settings.otp_pepper.get_secret_value() == data["otp-pepper"]
        if name == "notify":
            assert settings.fcm_credentials.get_secret_value() == data["fcm-service-account-json"]
    assert set(accepted["account"]) == {"payment-service", "vas-service", "loyalty-service", "ops"}
    assert set(accepted["payment"]) == {"ops"}
    assert set(accepted["notify"]) == {"campaign-tools", "ops"}
    assert set(accepted["vas"]) == {"ops"}  # partners come with their own keys
    # The key payment calls with is the one account accepts from payment, and no other.
    assert accepted["account"]["payment-service"] == data["internal-key-payment"]


def test_only_the_vas_service_mounts_the_content_providers_keys() -> None:
    docs = render()
    for name in SERVICES:
        files = secret_files(one(docs, "Deployment", f"{PREFIX}-{name}"))
        providers = {path for path in files if path.startswith("content_provider_keys/")}
        assert providers == ({f"content_provider_keys/{p}" for p in PROVIDERS} if name == "vas" else set()), (
            name
        )


def test_a_disabled_service_gets_no_keys() -> None:
    docs = render("services.stores.enabled=false")
    data = secret_data(docs)
    assert "gateway-key-stores" not in data and "internal-key-stores" not in data
    assert "stores" not in secret_files(one(docs, "Deployment", f"{PREFIX}-gateway"), "keys")


def test_existing_secret_is_used_instead_of_creating_one() -> None:
    docs = render(
        "kafka.bootstrap=k:9092",
        "kafka.security.caSecret=k-cluster-ca-cert",
        "secrets.existingSecret=platform-secrets",
        values=None,
    )
    assert not find(docs, "Secret")
    files = secret_files(one(docs, "Deployment", f"{PREFIX}-account"))
    assert files["mongodb_url"] == ("platform-secrets", "mongodb-url")
    assert files["gateway_key"] == ("platform-secrets", "gateway-key-account")


def test_hpa_replaces_fixed_replicas() -> None:
    docs = render("services.account.autoscaling.enabled=true", "services.account.autoscaling.maxReplicas=3")
    hpa = one(docs, "HorizontalPodAutoscaler", f"{PREFIX}-account")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{PREFIX}-account"
    assert hpa["spec"]["maxReplicas"] == 3
    assert "replicas" not in one(docs, "Deployment", f"{PREFIX}-account")["spec"]
    assert "replicas" in one(docs, "Deployment", f"{PREFIX}-vas")["spec"]


def test_per_service_overrides_can_turn_things_off() -> None:
    docs = render("services.vas.pdb.enabled=false", "services.vas.replicas=0")
    assert not find(docs, "PodDisruptionBudget", f"{PREFIX}-vas")
    assert one(docs, "Deployment", f"{PREFIX}-vas")["spec"]["replicas"] == 0
    assert find(docs, "PodDisruptionBudget", f"{PREFIX}-account")


def test_disabled_service_is_absent_and_its_routes_answer_503() -> None:
    docs = render("services.vas.enabled=false", "services.stores.enabled=false")
    for name in ("vas", "stores"):
        assert not find(docs, "Deployment", f"{PREFIX}-{name}")
        assert not find(docs, "Service", f"{PREFIX}-{name}")
        assert not find(docs, "NetworkPolicy", f"{PREFIX}-{name}")
    conf = nginx_conf(docs)
    assert "upstream gw_vas" not in conf
    for name, path in (("vas", "/api/v1/vas/"), ("stores", "/api/v1/stores/")):
        assert f"location ^~ {path} {{\n            set $gw_service {name};\n            return 503;" in conf
    assert "proxy_pass http://gw_account;" in conf


# --- gateway -----------------------------------------------------------------------------------


def local_render(tmp_path: Path, **env: str) -> str:
    base = {
        "PATH": os.environ["PATH"],
        "SERVICES": " ".join(SERVICES),
        "GATEWAY_PORT": "8080",
        "GATEWAY_LISTEN_ADDR": "",
        **{f"GATEWAY_KEY_{name.upper()}": f"unused-here-{name}" for name in SERVICES},
        "GATEWAY_NJS_MODULE": "/etc/nginx/modules/ngx_http_js_module.so",
        "GATEWAY_RUN_DIR": "/tmp",
        "GATEWAY_TEMP_DIR": "/tmp",
        "GATEWAY_ERROR_LOG": "/dev/stderr",
        "GATEWAY_ACCESS_LOG": "/dev/stdout",
        "GATEWAY_KEY_INCLUDE": "/etc/nginx/conf.d/gateway-key.conf",
        "GATEWAY_STATUS_PORT": "8081",
        "GATEWAY_UPSTREAM_TEMPLATE": f"{PREFIX}-{{name}}.{NAMESPACE}.svc:8000",
        "CARRIER_PROXY_CIDRS": "10.20.0.0/16 100.64.12.0/24",
        "RATE_LIMIT_EXEMPT_CIDRS": "",
        "GATEWAY_ZERO_RATED_PORT": "8090",
        "GATEWAY_ZERO_RATED_HOST": "app-api.mobifone.vn",
    }
    base.update(env)
    out = tmp_path / "local"
    render_py = ROOT / "deploy" / "gateway" / "render.py"
    subprocess.run(["python3", str(render_py), str(out)], env=base, check=True, timeout=60)
    return (out / "nginx.conf").read_text()


def test_gateway_config_is_the_local_renderers_output(tmp_path: Path) -> None:
    """One template and route table: the chart and deploy/gateway/render.py agree byte for byte."""
    assert nginx_conf(render()) == local_render(tmp_path)
    docs = render(
        "services.loyalty.enabled=false",
        "gateway.rate=50",
        "gateway.authBurst=3",
        "gateway.bodyLimit=128k",
        "gateway.rateLimitExemptCidrs={192.0.2.10/32}",
        "gateway.metrics.enabled=false",
        "zeroRating.enabled=false",
    )
    assert nginx_conf(docs) == local_render(
        tmp_path,
        GATEWAY_ZERO_RATED_PORT="",
        GATEWAY_ZERO_RATED_HOST="",
        SERVICES="account vas payment notify stores",
        GATEWAY_RATE="50",
        GATEWAY_AUTH_BURST="3",
        GATEWAY_BODY_LIMIT="128k",
        RATE_LIMIT_EXEMPT_CIDRS="192.0.2.10/32",
        GATEWAY_STATUS_PORT="",
    )


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
def test_gateway_config_passes_nginx_t(tmp_path: Path) -> None:
    config = one(render(), "ConfigMap", f"{PREFIX}-gateway")["data"]
    conf = config["nginx.conf"]
    assert not re.search(r"@[A-Z_]+@", conf), "a placeholder was left unreplaced"
    # Local stand-ins for what only exists in the pod: cluster DNS names and writable paths.
    conf = re.sub(r"server [a-z0-9.-]+\.svc:8000;", "server 127.0.0.1:8000;", conf)
    conf = conf.replace("/etc/nginx/conf.d/gateway-key.conf", str(tmp_path / "key.conf"))
    conf = conf.replace("pid /tmp/", f"pid {tmp_path}/")
    conf = conf.replace("_temp_path /tmp/", f"_temp_path {tmp_path}/")
    assert "load_module /etc/nginx/modules/ngx_http_js_module.so;" in conf  # the nginx image's njs
    conf = conf.replace("/etc/nginx/modules/", "/usr/lib/nginx/modules/")  # Debian's (install.sh)
    # The key file as the pod's init container writes it (the chart's script, run here).
    write_gateway_keys(config["gateway-keys.sh"], {name: f"key-of-{name}" for name in SERVICES}, tmp_path)
    (tmp_path / "gateway.js").write_text(config["gateway.js"])
    (tmp_path / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def write_gateway_keys(script: str, keys: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Runs the init container's script on key files laid out as the Secret volume mounts them;
    it writes tmp_path/key.conf."""
    keys_dir = tmp_path / "gateway-keys"
    keys_dir.mkdir(exist_ok=True)
    for name, key in keys.items():
        (keys_dir / name).write_text(key)
    (tmp_path / "gateway-keys.sh").write_text(script)
    return subprocess.run(
        ["sh", str(tmp_path / "gateway-keys.sh"), str(keys_dir), str(tmp_path / "key.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_gateway_key_file_maps_each_service_to_its_own_key_and_refuses_odd_keys(tmp_path: Path) -> None:
    script = one(render(), "ConfigMap", f"{PREFIX}-gateway")["data"]["gateway-keys.sh"]
    result = write_gateway_keys(script, {"account": "k-acc+/=.~_1", "vas": "k-vas"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "key.conf").read_text().splitlines()[1:] == [
        "map $gw_service $gw_gateway_key {",
        '    default "";',
        '    account "k-acc+/=.~_1";',
        '    vas "k-vas";',
        "}",
    ]
    for bad in ('k"; default "x', "k ey", ""):
        (tmp_path / "key.conf").unlink(missing_ok=True)
        result = write_gateway_keys(script, {"account": bad}, tmp_path)
        assert result.returncode != 0 and "gateway-key-account" in result.stderr, bad
        assert not (tmp_path / "key.conf").exists()


def test_gateway_deployment() -> None:
    docs = render()
    deployment = one(docs, "Deployment", f"{PREFIX}-gateway")
    nginx = container(deployment, "nginx")
    assert nginx["args"] == ["nginx", "-c", "/etc/nginx/gateway/nginx.conf"]
    assert nginx["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert nginx["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "env" not in nginx, "the keys are files, not environment variables"
    keys = secret_files(deployment, "keys")
    assert keys == {name: (f"{PREFIX}-secrets", f"gateway-key-{name}") for name in SERVICES}
    [init] = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["command"][:2] == ["sh", "/etc/nginx/gateway/gateway-keys.sh"]
    assert init["command"][2:] == ["/etc/mymobifone/gateway-keys", "/etc/nginx/conf.d/gateway-key.conf"]
    init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert init_mounts["/etc/mymobifone/gateway-keys"] == "keys"
    assert init_mounts["/etc/nginx/conf.d"] == "rendered"
    mounts = {m["mountPath"]: m for m in nginx["volumeMounts"]}
    assert {"/etc/nginx/gateway/nginx.conf", "/etc/nginx/gateway/gateway.js"} <= set(mounts)
    assert mounts["/etc/nginx/conf.d"]["name"] == "rendered"  # the init container's key file
    assert mounts["/etc/nginx/conf.d"]["readOnly"] is True
    assert volume(deployment, "rendered")["emptyDir"]["medium"] == "Memory"
    exporter = container(deployment, "exporter")
    assert "--nginx.scrape-uri=http://127.0.0.1:8081/nginx_status" in exporter["args"]
    config = one(docs, "ConfigMap", f"{PREFIX}-gateway")["data"]
    assert config["gateway.js"] == (ROOT / "deploy" / "gateway" / "gateway.js").read_text()
    conf = config["nginx.conf"]
    assert "js_set $gw_msisdn_repeated gw.msisdnRepeated;" in conf
    assert "        10.20.0.0/16 1;\n        100.64.12.0/24 1;\n" in conf
    assert "server rel-mymobifone-account.mm.svc:8000;" in conf
    assert "listen 8080 default_server;" in conf
    service = one(docs, "Service", f"{PREFIX}-gateway")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert one(docs, "PodDisruptionBudget", f"{PREFIX}-gateway")
    assert one(docs, "Service", f"{PREFIX}-gateway-metrics")["spec"]["type"] == "ClusterIP"
    assert find(docs, "Pod", f"{PREFIX}-test-gateway")


# --- network policies ------------------------------------------------------------------------------


def test_only_the_gateway_and_callers_reach_services() -> None:
    docs = render()
    gateway_selector = {
        "app.kubernetes.io/name": "mymobifone",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "gateway",
    }
    for name in SERVICES:
        policy = one(docs, "NetworkPolicy", f"{PREFIX}-{name}")["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
        pod_peers = [p["podSelector"]["matchLabels"] for p in peers if "namespaceSelector" not in p]
        callers = {p["app.kubernetes.io/component"] for p in pod_peers}
        # The account service's subscriber lookups are called by payment, vas and loyalty.
        account_callers = {"gateway", "payment", "vas", "loyalty"}
        assert callers == (account_callers if name == "account" else {"gateway"}), name
        assert gateway_selector in pod_peers
        # Prometheus, from its namespace only.
        [monitoring] = [p for p in peers if "namespaceSelector" in p]
        assert monitoring["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
        egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
        assert {53, 9092, 27017, 6379} <= egress_ports
    payment = one(docs, "NetworkPolicy", f"{PREFIX}-payment")["spec"]
    to_pods = [p for r in payment["egress"] for p in r.get("to", []) if "namespaceSelector" not in p]
    to_account = [r for r in payment["egress"] if r.get("to") and r["to"][0] in to_pods]
    assert to_account[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "account"
    gateway = one(docs, "NetworkPolicy", f"{PREFIX}-gateway")["spec"]
    targets = [p.get("podSelector", {}).get("matchLabels") for rule in gateway["egress"] for p in rule["to"]]
    assert {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/tier": "service"} in targets


def test_network_policies_can_be_turned_off() -> None:
    assert not find(render("networkPolicy.enabled=false"), "NetworkPolicy")


# --- monitoring --------------------------------------------------------------------------------------


def test_prometheus_rule_is_the_rules_files() -> None:
    docs = render()
    rule = one(docs, "PrometheusRule", PREFIX)
    expected = []
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        expected.extend(yaml.safe_load(path.read_text())["groups"])
    assert rule["spec"]["groups"] == expected


def test_service_monitors_keep_the_services_own_labels() -> None:
    docs = render()
    for name in SERVICES:
        monitor = one(docs, "ServiceMonitor", f"{PREFIX}-{name}")
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "http"
        assert endpoint["path"] == "/metrics"
        assert endpoint["honorLabels"] is True
        relabel = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        assert relabel == {"job": name, "service": f"{name}-service", "tier": "service"}
        pod = one(docs, "Deployment", f"{PREFIX}-{name}")["spec"]["template"]
        assert "prometheus.io/scrape" not in pod["metadata"]["annotations"]
    assert one(docs, "ServiceMonitor", f"{PREFIX}-gateway")


def test_without_the_operator_pods_are_annotated_for_scraping() -> None:
    docs = render("monitoring.serviceMonitor.enabled=false", "monitoring.prometheusRule.enabled=false")
    assert not find(docs, "ServiceMonitor")
    assert not find(docs, "PrometheusRule")
    annotations = one(docs, "Deployment", f"{PREFIX}-account")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_topics_job_runs_before_install_and_upgrade() -> None:
    job = one(render(), "Job", f"{PREFIX}-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert c["command"][:3] == ["python", "-m", "servicekit.kafka.admin"]
    assert option(c["command"], "--replication-factor") == "3"
    assert env_of(c)["KAFKA_BOOTSTRAP"].startswith("kafka-0")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_topics_replication_factor_partitions_and_retention_are_values() -> None:
    sets = ("topics.replicationFactor=5", "topics.partitions=12", "topics.retentionHours=72")
    job = one(render(*sets), "Job", f"{PREFIX}-topics")
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert option(c["command"], "--replication-factor") == "5"
    assert option(c["command"], "--partitions") == "12"
    assert option(c["command"], "--retention-hours") == "72"


def test_packaged_chart_carries_the_shared_files(tmp_path: Path) -> None:
    """files/gateway and files/prometheus-rules are symlinks: the package must hold the files."""
    result = helm("package", str(CHART), "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [package] = tmp_path.glob("mymobifone-*.tgz")
    listing = subprocess.run(["tar", "tzf", str(package)], capture_output=True, text=True, check=True).stdout
    names = set(listing.split())
    assert "mymobifone/files/gateway/nginx.conf.tmpl" in names
    assert "mymobifone/files/gateway/routes.tsv" in names
    assert "mymobifone/files/gateway/gateway.js" in names
    assert "mymobifone/files/prometheus-rules/alerts.yml" in names
    assert not any(name.endswith((".py", ".sh")) for name in names)
    rendered = helm("template", RELEASE, str(package), "-f", str(CI_VALUES), "--kube-version", KUBE)
    assert rendered.returncode == 0, rendered.stderr
    assert "proxy_pass http://gw_account;" in rendered.stdout


# --- Kafka: each service its own principal, the ACLs of the contracts as Strimzi users -------


def test_each_service_reaches_kafka_as_its_own_principal_with_mounted_credentials() -> None:
    docs = render()
    for name in SERVICES:
        pod = one(docs, "Deployment", f"{PREFIX}-{name}")["spec"]["template"]["spec"]
        env = env_of(container(one(docs, "Deployment", f"{PREFIX}-{name}"), name))
        assert env["KAFKA_USERNAME"] == f"{name}-service"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_PASSWORD_FILE"].startswith("/etc/mymobifone/kafka-user/")
        volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        assert volumes["kafka-user"]["secretName"] == f"{name}-service"
        assert volumes["kafka-user"]["items"] == [{"key": "password", "path": "password"}]
        assert volumes["kafka-ca"]["secretName"] == "data-kafka-cluster-ca-cert"
        assert "KAFKA_PASSWORD" not in env, "a password never travels as an environment variable"


def test_kafka_users_carry_exactly_the_acls_the_contracts_imply() -> None:
    from servicekit.kafka.acls import strimzi_users

    users = {d["metadata"]["name"]: d for d in find(render(), "KafkaUser")}
    wanted = strimzi_users()
    assert set(users) == set(wanted)
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "data-kafka"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["acls"] == wanted[name], name


def test_a_disabled_service_gets_no_kafka_user() -> None:
    users = {d["metadata"]["name"] for d in find(render("services.stores.enabled=false"), "KafkaUser")}
    assert "stores-service" not in users and "account-service" in users


def test_the_topics_job_creates_topics_only_as_its_own_principal() -> None:
    job = one(render(), "Job", f"{PREFIX}-topics")
    [topics] = job["spec"]["template"]["spec"]["containers"]
    assert "--topics-only" in topics["command"]
    assert env_of(topics)["KAFKA_USERNAME"] == "mymobifone-topics"


def test_the_brokers_ca_is_required() -> None:
    assert "kafka.security.caSecret is required" in render_error("kafka.security.caSecret=")
