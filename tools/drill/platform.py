"""The local platform as the drill sees it: deploy/local's settings, its processes by their pid
files, readiness of everything the app's flows need, and the scripts that start and stop parts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
SETTINGS = (
    "ROOT RUN LOGS BIN SERVICES GATEWAY_PORT ACCOUNT_PORT VAS_PORT PAYMENT_PORT LOYALTY_PORT NOTIFY_PORT "
    "STORES_PORT PAYPROV_PORT SMSC_HTTP_PORT KAFKA_PORT KAFKA_PROXIED_PORT KAFKA_PROXY_PORT REDIS_PORT "
    "MONGO_PORT PG_PORT MONGODB_URL_EXTERNAL FERRETDB_BACKEND"
)


def script_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment for deploy/local's scripts, less what env.sh decided for an earlier run
    (it decides once per process tree), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MM_ENV_LOADED", "MONGODB_URL_EXTERNAL")}
    return env | dict(overrides or {})


def load_settings() -> dict[str, str]:
    show = f'source "{LOCAL}/env.sh"; for n in {SETTINGS}; do printf "%s=%s\\0" "$n" "${{!n}}"; done'
    out = subprocess.run(
        ["bash", "-c", show], env=script_env(), capture_output=True, text=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return None


@dataclass(frozen=True)
class Platform:
    env: dict[str, str]

    @classmethod
    def local(cls) -> Platform:
        return cls(load_settings())

    def port(self, name: str) -> int:
        return int(self.env[f"{name.upper()}_PORT"])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    @property
    def services(self) -> list[str]:
        installed = Path(self.env["ROOT"]) / ".venv" / "bin"
        return [n for n in self.env["SERVICES"].split() if (installed / f"{n}-service").exists()]

    @property
    def runs_store(self) -> bool:
        """FerretDB on PostgreSQL run by this platform (not an external MongoDB)."""
        return not self.env["MONGODB_URL_EXTERNAL"] and self.env["FERRETDB_BACKEND"] == "postgresql"

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
        if pid is None or not self.alive(name):
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def script(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """A deploy/local script (`script("platform.sh", "restart", "kafka")`); fails loudly."""
        done = subprocess.run(
            [str(LOCAL / args[0]), *args[1:]],
            env=script_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
        return done

    async def run_script(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        """`script` without blocking the traffic that flows meanwhile."""
        await asyncio.to_thread(self.script, *args, env=env)

    async def readiness(self) -> dict[str, bool]:
        """Each service's /ready, the sandboxes' /health and the gateway's /healthz."""
        checks = {f"{name}/ready": self.url(name) + "/ready" for name in self.services}
        checks |= {
            "smsc/health": self.url("smsc_http") + "/health",
            "provider/health": self.url("payprov") + "/health",
            "gateway/healthz": self.url("gateway") + "/healthz",
        }
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:

            async def ok(url: str) -> bool:
                try:
                    return (await client.get(url)).status_code == 200
                except httpx.HTTPError:
                    return False

            results = await asyncio.gather(*(ok(url) for url in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def all_ready(self) -> bool:
        return all((await self.readiness()).values())

    async def not_ready(self) -> list[str]:
        return [name for name, ok in (await self.readiness()).items() if not ok]


async def wait_for(check: Callable[[], Awaitable[object]], within: float, interval: float = 0.25) -> float:
    """Polls `check` until it is truthy: the seconds it took; TimeoutError past `within`."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimeoutError(f"not within {within:.0f} s")
        await asyncio.sleep(interval)
