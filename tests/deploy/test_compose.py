"""deploy/docker-compose.yml: no Docker engine here, so its structure is checked as YAML, and the
configs its render-config service produces are rendered and checked with nginx and promtool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
SERVICES = ("account", "vas", "payment", "loyalty", "notify", "stores")
# Compose service -> (workspace package, HTTP port) of the images built from DOCKERFILE.
SANDBOXES = {
    "smsc": ("smsc-sandbox", "8191"),
    "payment-provider": ("payment-provider-sandbox", "8192"),
    "push": ("push-sandbox", "8193"),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def test_every_part_is_there(compose: dict) -> None:
    assert compose["name"] == "mymobifone"
    expected = {*SERVICES, "kafka", "kafka-secrets", "mongo", "redis", "init", *SANDBOXES}
    expected |= {"render-config", "gateway", "prometheus"}
    assert set(compose["services"]) == expected


def test_kafka_is_a_single_kraft_node_without_auto_create(compose: dict) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_kafka_runs_the_generated_secure_configuration_and_services_read_their_own_password(
    compose: dict,
) -> None:
    kafka = compose["services"]["kafka"]
    assert "/run/kafka/server.properties" in kafka["command"][0]
    assert "servicekit.kafka.broker_config" in compose["services"]["kafka-secrets"]["command"][0]
    assert "--command-config /run/kafka/admin.properties" in kafka["healthcheck"]["test"][1]
    for name in SERVICES:
        service = compose["services"][name]
        assert environment(service)["KAFKA_SECRETS_DIR"] == "/run/kafka"
        assert "kafka-secrets:/run/kafka:ro" in service["volumes"]


def test_real_mongodb_and_redis(compose: dict) -> None:
    assert compose["services"]["mongo"]["image"].startswith("mongo:")
    assert compose["services"]["redis"]["image"].startswith("redis:")
    for name in ("mongo", "redis"):
        assert "healthcheck" in compose["services"][name]


def test_services_are_built_from_the_one_dockerfile_and_wired(compose: dict) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["build"] == {
            "context": "..",
            "dockerfile": "deploy/docker/Dockerfile",
            "args": {"PACKAGE": f"{name}-service"},
        }
        env = environment(service)
        assert env["SERVICE_NAME"] == f"{name}-service"
        assert env["HTTP_PORT"] == "8000"
        assert env["HTTP_HOST"] == "0.0.0.0"
        assert env["KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["MONGODB_URL"] == "mongodb://mongo:27017/"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["JWT_PUBLIC_KEY_FILE"].startswith("/run/mymobifone/jwt/")
        assert "8000/health" in " ".join(service["healthcheck"]["test"])
        deps = service["depends_on"]
        assert deps["init"]["condition"] == "service_completed_successfully"
        for infra in ("kafka", "mongo", "redis"):
            assert deps[infra]["condition"] == "service_healthy"
        assert "ports" not in service  # reachable only through the gateway
    assert environment(compose["services"]["payment"])["ACCOUNT_INTERNAL_URL"] == "http://account:8000"
    init = compose["services"]["init"]
    assert "servicekit.kafka.admin" in " ".join(init["command"])


def test_each_service_has_its_own_keys_and_the_gateway_sends_it_its_own(
    compose: dict, tmp_path: Path
) -> None:
    """One shared key would let a service that leaks it log anyone in by header (only the
    account service's gateway key trusts X-MSISDN) and call every other's internal API."""
    envs = {name: environment(compose["services"][name]) for name in SERVICES}
    for variable in ("GATEWAY_KEY", "INTERNAL_KEY"):
        keys = [env[variable] for env in envs.values()]
        assert all(keys) and len(set(keys)) == len(keys), variable
    for name, env in envs.items():
        # The laptop profile, whose defaults these are (servicekit: own_gateway_key, local_key);
        # any other ENVIRONMENT makes the services refuse them.
        assert env["ENVIRONMENT"] == "local"
        assert env["GATEWAY_KEY"] == f"local-gateway-key-{name}-service"
        assert env["INTERNAL_KEY"] == f"local-internal-key-{name}-service"
        raw = compose["services"][name]["environment"]["GATEWAY_KEY"]
        assert raw.startswith(f"${{GATEWAY_KEY_{name.upper()}:-"), raw  # one variable sets both sides
    gateway_dir, _ = render_like_compose(compose, tmp_path)
    key_conf = (gateway_dir / "gateway-key.conf").read_text()
    for name, env in envs.items():
        assert f'    {name} "{env["GATEWAY_KEY"]}";\n' in key_conf


def test_sandboxes_are_built_and_the_provider_notifies_through_the_gateway(compose: dict) -> None:
    provider = compose["services"]["payment-provider"]
    for name, (package, port) in SANDBOXES.items():
        sandbox = compose["services"][name]
        assert sandbox["build"] == {
            "context": "..",
            "dockerfile": "deploy/docker/Dockerfile",
            "args": {"PACKAGE": package, "PORT": port},
        }
        assert f"127.0.0.1:{port}/health" in " ".join(sandbox["healthcheck"]["test"])
    assert environment(provider)["PAYPROV_IPN_URL"] == "http://gateway:8080/api/v1/payments/provider/ipn"
    assert (
        environment(provider)["PAYPROV_HASH_SECRET"]
        == environment(compose["services"]["payment"])["PROVIDER_HASH_SECRET"]
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_one_parameterised_dockerfile_builds_every_image(compose: dict) -> None:
    """The per-package Dockerfiles were copies of one another: one recipe, PACKAGE/COMMAND/PORT."""
    assert not list(ROOT.glob("services/*/Dockerfile")) and not list(ROOT.glob("sandboxes/*/Dockerfile"))
    built = {name: s["build"] for name, s in compose["services"].items() if "build" in s}
    assert set(built) == {*SERVICES, *SANDBOXES, "init", "kafka-secrets"}
    assert {b["dockerfile"] for b in built.values()} == {"deploy/docker/Dockerfile"}
    assert (ROOT / "deploy" / built["init"]["context"] / built["init"]["dockerfile"]).resolve() == DOCKERFILE
    instructions = dockerfile_instructions()
    args = [a for i, a in instructions if i == "ARG"]
    assert "COMMAND=${PACKAGE}" in args and "PORT=8000" in args and "PACKAGE" in args
    runs = " ".join(a for i, a in instructions if i == "RUN")
    assert '--frozen --no-dev --no-editable --package "$PACKAGE"' in runs
    copies = [a for i, a in instructions if i == "COPY"]
    # Whole directories: a library renamed inside libs/ needs no change here.
    for directory in ("contracts", "libs", "services", "sandboxes"):
        assert f"{directory} {directory}" in copies
    assert ("USER", "10001") in instructions
    assert ("EXPOSE", "${PORT}") in instructions
    assert [a for i, a in instructions if i == "CMD"] == ['["/app/entrypoint"]']
    [health] = [a for i, a in instructions if i == "HEALTHCHECK"]
    assert "HEALTH_PORT" in health
    env = " ".join(a for i, a in instructions if i == "ENV")
    assert "HEALTH_PORT=${PORT}" in env and "HTTP_PORT=8000" in env
    ignored = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    assert {".cache", ".venv", ".git"} <= set(ignored)


def test_each_image_runs_an_entry_point_its_package_declares(compose: dict) -> None:
    """COMMAND defaults to PACKAGE: each package that exists declares a script of its own name."""
    packages = {}
    for pyproject in [*ROOT.glob("services/*/pyproject.toml"), *ROOT.glob("sandboxes/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        packages[project["name"]] = project.get("scripts", {})
    wanted = {s["build"]["args"]["PACKAGE"] for s in compose["services"].values() if "build" in s}
    assert {"account-service", "payment-service", "smsc-sandbox", "payment-provider-sandbox"} <= set(packages)
    for package in wanted & set(packages):
        assert package in packages[package], f"{package} has no `{package}` script"


def test_every_dockerfile_the_deployment_names_exists() -> None:
    """Compose, the Helm chart and the README point at the one Dockerfile, not at old copies."""
    texts = [COMPOSE, ROOT / "README.md", *sorted((ROOT / "deploy" / "helm").rglob("*.y*ml"))]
    texts += sorted((ROOT / "deploy" / "helm").rglob("*.md"))
    named = {m for path in texts for m in re.findall(r"[\w./-]*Dockerfile\b", path.read_text())}
    assert "deploy/docker/Dockerfile" in named
    for name in named - {"Dockerfile"}:
        assert (ROOT / name).is_file(), f"{name} is named but does not exist"


def test_published_ports_are_local_only(compose: dict) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert set(published) == {"gateway", "prometheus", *SANDBOXES}
    for ports in published.values():
        for port in ports:
            assert port.startswith("127.0.0.1:"), port


def test_gateway_and_prometheus_use_the_rendered_configs(compose: dict) -> None:
    services = compose["services"]
    gateway, prometheus = services["gateway"], services["prometheus"]
    assert gateway["command"] == ["nginx", "-c", "/rendered/gateway/nginx.conf"]
    assert "gateway-config:/rendered/gateway:ro" in gateway["volumes"]
    assert "--config.file=/rendered/prometheus/prometheus.yml" in prometheus["command"]
    assert "prometheus-config:/rendered/prometheus:ro" in prometheus["volumes"]
    # The gateway key lives only in the gateway's config volume.
    assert not any("gateway-config" in v for v in prometheus["volumes"])
    for name in ("gateway", "prometheus"):
        assert services[name]["depends_on"]["render-config"]["condition"] == "service_completed_successfully"
    for volume in ("kafka", "mongo", "redis", "jwt", "gateway-config", "prometheus-config", "prometheus"):
        assert volume in compose["volumes"]


def render_like_compose(compose: dict, tmp_path: Path) -> tuple[Path, Path]:
    """Runs the two renderers with the render-config service's environment."""
    env = {"PATH": os.environ["PATH"], **environment(compose["services"]["render-config"])}
    gateway_dir, prometheus_dir = tmp_path / "gateway", tmp_path / "prometheus"
    for script, out in (("gateway", gateway_dir), ("prometheus", prometheus_dir)):
        subprocess.run(["python3", f"deploy/{script}/render.py", str(out)], env=env, cwd=ROOT, check=True)
    return gateway_dir, prometheus_dir


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
def test_compose_gateway_config_is_valid(compose: dict, tmp_path: Path) -> None:
    gateway_dir, _ = render_like_compose(compose, tmp_path)
    conf = (gateway_dir / "nginx.conf").read_text()
    for name in SERVICES:
        assert f"server {name}:8000;" in conf
    assert "listen 8080 default_server;" in conf
    # Container-only names and paths replaced by local stand-ins, then nginx -t.
    conf = re.sub(r"server [a-z]+:8000;", "server 127.0.0.1:8000;", conf)
    conf = conf.replace("/rendered/gateway/", f"{gateway_dir}/")
    assert "load_module /etc/nginx/modules/ngx_http_js_module.so;" in conf  # the nginx image's njs
    conf = conf.replace("/etc/nginx/modules/", "/usr/lib/nginx/modules/")  # Debian's (install.sh)
    conf = conf.replace("pid /tmp/", f"pid {tmp_path}/")
    conf = conf.replace("_temp_path /tmp/", f"_temp_path {tmp_path}/")
    (gateway_dir / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", f"{gateway_dir}/", "-c", str(gateway_dir / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")
def test_compose_prometheus_config_is_valid(compose: dict, tmp_path: Path) -> None:
    _, prometheus_dir = render_like_compose(compose, tmp_path)
    text = (prometheus_dir / "prometheus.yml").read_text()
    for name in SERVICES:
        assert f'["{name}:8000"]' in text
    assert '["smsc:8191"]' in text
    assert '["payment-provider:8192"]' in text
    assert "ferretdb" not in text
    check = ["promtool", "check", "config", str(prometheus_dir / "prometheus.yml")]
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def compose_command() -> list[str] | None:
    """`docker compose` (the CLI plugin) or a standalone Compose v2 `docker-compose` binary."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    for binary in (shutil.which("docker-compose"), ROOT / ".cache" / "bin" / "docker-compose"):
        if binary and Path(binary).is_file():
            candidates.append([str(binary)])
    for command in candidates:
        version = subprocess.run([*command, "version"], capture_output=True, text=True)
        if version.returncode == 0 and "Docker Compose version" in version.stdout:
            return command
    return None


@pytest.mark.skipif(compose_command() is None, reason="no Docker Compose v2: the structure is checked above")
def test_docker_compose_config_accepts_it() -> None:
    command = compose_command()
    assert command is not None
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
