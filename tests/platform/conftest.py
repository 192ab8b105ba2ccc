"""Tests of the local platform's processes: the scripts of deploy/local and the supervisor.

They use the platform the environment points at (deploy/local/env.sh's variables: MM_STATE,
*_PORT, ...), the default one under `make test`, and leave it healthy: whatever they kill or
wedge, they wait until the platform is ready again. Tests that need scratch processes start
them in a temporary state directory on free ports and stop them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicekit.internal_keys import caller_headers

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
# The operators' tools call internal routes as "ops" (local key unless OPS_INTERNAL_KEY is set).
OPS_HEADERS = caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None)
CARRIER_PROXY = "127.0.0.2"  # inside CARRIER_PROXY_CIDRS of the local gateway
SETTINGS = (
    "ROOT RUN LOGS DATA MONGODB_URL MONGODB_URL_EXTERNAL FERRETDB_BACKEND SERVICES GATEWAY_PORT "
    "ACCOUNT_PORT VAS_PORT PAYMENT_PORT LOYALTY_PORT NOTIFY_PORT STORES_PORT PAYPROV_PORT SMSC_HTTP_PORT "
    "PUSH_SANDBOX_PORT KAFKA_PORT REDIS_PORT MONGO_PORT PG_PORT PROMETHEUS_PORT"
)


def script_env(**overrides: str) -> dict[str, str]:
    """The environment for running deploy/local scripts: ours, without what env.sh decided for
    an earlier run (it is decided once per process tree)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MM_ENV_LOADED", "MONGODB_URL_EXTERNAL")}
    return env | overrides


def settings(**overrides: str) -> dict[str, str]:
    """env.sh's settings, as the scripts see them with this environment (+ overrides)."""
    show = f'source "{LOCAL}/env.sh"; for n in {SETTINGS}; do printf "%s=%s\\0" "$n" "${{!n}}"; done'
    out = subprocess.run(
        ["bash", "-c", show], env=script_env(**overrides), capture_output=True, text=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def run(
    *args: str, timeout: float = 300, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """A deploy/local script (`run("platform.sh", "status")`), its output captured."""
    return subprocess.run(
        [str(LOCAL / args[0]), *args[1:]],
        env=script_env(**env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return None


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]

    def port(self, name: str) -> int:
        return int(self.env[f"{name.upper()}_PORT"])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    @property
    def services(self) -> list[str]:
        # Services not installed (their package not in the workspace yet) are not started.
        bin_dir = Path(self.env["ROOT"]) / ".venv" / "bin"
        return [name for name in self.env["SERVICES"].split() if (bin_dir / f"{name}-service").exists()]

    def pid(self, name: str) -> int | None:
        try:
            return int((Path(self.env["RUN"]) / f"{name}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and proc_state(pid) not in (None, "Z", "X")

    def sigkill(self, name: str) -> int:
        pid = self.pid(name)
        assert pid and self.alive(name), f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        return pid

    @property
    def has_ferretdb(self) -> bool:
        return not self.env["MONGODB_URL_EXTERNAL"]

    def supervisor_log(self) -> str:
        try:
            return (Path(self.env["LOGS"]) / "supervisor.log").read_text()
        except FileNotFoundError:
            return ""

    async def ready(self) -> dict[str, bool]:
        """Each service's /ready, the sandboxes' /health and the gateway's /healthz."""
        checks = {f"{name}/ready": (self.url(name), "/ready") for name in self.services}
        checks |= {
            "smsc/health": (self.url("smsc_http"), "/health"),
            "provider/health": (self.url("payprov"), "/health"),
            "gateway/healthz": (self.url("gateway"), "/healthz"),
        }
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:

            async def ok(base: str, path: str) -> bool:
                try:
                    return (await client.get(base + path)).status_code == 200
                except httpx.HTTPError:
                    return False

            results = await asyncio.gather(*(ok(*check) for check in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def all_ready(self) -> bool:
        return all((await self.ready()).values())


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float, interval: float = 0.2) -> float:
    """Polls the async `check` until it is truthy; returns the seconds it took, fails on timeout."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        last = await check()
        if last:
            return time.monotonic() - started
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout} s (last: {last!r})")


@pytest.fixture(scope="session")
def platform() -> Platform:
    return Platform(settings())


@pytest.fixture
async def healthy(platform: Platform) -> AsyncIterator[Platform]:
    """The platform, ready before the test and, whatever the test did, ready after it."""
    assert platform.alive("supervisor"), "the supervisor is not running (`make up` starts it)"
    await wait_for(platform.all_ready, timeout=120)
    yield platform
    try:
        await wait_for(platform.all_ready, timeout=120)
    except AssertionError:
        # Left as a test found it would fail every test after: start what is missing.
        run("platform.sh", "up")
        raise
