"""Faults the model-based test injects into the running platform, each behind one small
function (the broker's may change with Kafka authentication: only `kafka_paused` knows how).

- `kafka_paused()`: the broker frozen (SIGSTOP of its process) for the block, then thawed;
- `kill_vas()` / `start_vas()`: the VAS service SIGKILLed, then started again as `make up`
  starts it (the supervisor would too, after its crash-loop backoff).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / ".cache" / "run"
VAS_URL = os.environ.get("VAS_URL", "http://127.0.0.1:8102")


def _pid(name: str) -> int | None:
    try:
        return int((RUN / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def can_pause_kafka() -> bool:
    """Only a broker this platform started (not KAFKA_EXTERNAL) can be paused."""
    return os.environ.get("KAFKA_EXTERNAL") != "1" and _pid("kafka") is not None


@contextmanager
def kafka_paused(at_most: float = 60.0) -> Iterator[None]:
    """Kafka frozen for the block. A detached watchdog thaws it after `at_most` seconds even if
    this process dies inside the block (a frozen broker would stall the whole platform)."""
    pid = _pid("kafka")
    if pid is None:
        raise RuntimeError("no local Kafka process to pause")
    subprocess.Popen(
        ["/bin/sh", "-c", f"sleep {int(at_most)}; kill -CONT {pid} 2>/dev/null"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def kill_vas() -> None:
    pid = _pid("vas")
    if pid is not None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start_vas(ready_within: float = 180.0) -> None:
    """Start the VAS service again (whatever is not running) and wait until it is ready."""
    subprocess.run(
        [str(ROOT / "deploy/local/platform.sh"), "start-app", "vas"], check=False, capture_output=True
    )
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{VAS_URL}/ready", timeout=3.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the VAS service was not ready within {ready_within} s of its restart")
