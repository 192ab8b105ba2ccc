"""deploy/local's handling of processes, on scratch processes: a temporary state directory and
free ports, so the platform under test is not touched."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from pymongo import MongoClient

from .conftest import LOCAL, ROOT, free_port, proc_state, run, script_env

pytestmark = pytest.mark.integration

PORTS = [
    "KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
    "MONGO_PORT",
    "PG_PORT",
    "REDIS_PORT",
    "GATEWAY_PORT",
    "ACCOUNT_PORT",
    "PAYMENT_PORT",
    "SMSC_SMPP_PORT",
    "SMSC_HTTP_PORT",
    "PAYPROV_PORT",
    "PUSH_SANDBOX_PORT",
    "PROMETHEUS_PORT",
    "FERRETDB_DEBUG_PORT",
    "GATEWAY_STATUS_PORT",
]


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a scratch platform: its own state directory, every port free. What a
    test starts there is stopped afterwards."""
    env = {"MM_STATE": str(tmp_path / "state")} | {name: str(free_port()) for name in PORTS}
    yield env
    run("platform.sh", "down", **env)


def test_make_down_exits_0(scratch: dict[str, str]) -> None:
    """`make down` used to exit 2 every time: infra.sh's stop loop ended on a false test."""
    assert run("infra.sh", "up", "redis", **scratch).returncode == 0
    pid = int(Path(scratch["MM_STATE"], "run", "redis.pid").read_text())
    down = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "down"], env=script_env(**scratch), capture_output=True, text=True
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert proc_state(pid) in (None, "Z")
    assert not Path(scratch["MM_STATE"], "run", "redis.pid").exists()
    again = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "down"], env=script_env(**scratch), capture_output=True
    )
    assert again.returncode == 0  # and with nothing running


# Holds a SIGKILLed process as a zombie, as PID 1 does here for about a second: it makes
# itself the orphans' reaper and never reaps. Then asks infra.sh to start the part again.
ZOMBIE_KEEPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
assert ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
infra, run_dir = sys.argv[1:]
subprocess.run([infra, "up", "redis"], check=True, capture_output=True)
pid = int(open(f"{run_dir}/redis.pid").read())
os.kill(pid, signal.SIGKILL)
time.sleep(0.3)
state = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0]
started = time.monotonic()
again = subprocess.run([infra, "up", "redis"], capture_output=True, text=True, timeout=120)
new_pid = int(open(f"{run_dir}/redis.pid").read())
print(json.dumps({"state": state, "rc": again.returncode, "took": time.monotonic() - started,
                  "log": again.stderr[-500:], "old": pid, "new": new_pid}))
subprocess.run([infra, "down", "redis"], capture_output=True)
"""


def test_a_zombie_is_not_running_so_up_starts_the_part_again(scratch: dict[str, str]) -> None:
    """After a SIGKILL the process is a zombie until reaped and `kill -0` still succeeds:
    `make up` said "already running" and then failed waiting for its port."""
    result = subprocess.run(
        [sys.executable, "-c", ZOMBIE_KEEPER, str(LOCAL / "infra.sh"), str(Path(scratch["MM_STATE"], "run"))],
        env=script_env(**scratch),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["state"] == "Z"  # the situation under test
    assert outcome["rc"] == 0, outcome["log"]
    assert outcome["new"] != outcome["old"]
    assert "already running" not in outcome["log"]
    assert outcome["took"] < 15


def test_status_tells_a_crashed_part_from_a_stopped_one(scratch: dict[str, str]) -> None:
    assert run("infra.sh", "up", "redis", **scratch).returncode == 0
    assert re.search(
        r"redis +running \(pid \d+\), port \d+ open", run("infra.sh", "status", **scratch).stdout
    )
    os.kill(int(Path(scratch["MM_STATE"], "run", "redis.pid").read_text()), signal.SIGKILL)
    assert re.search(r"redis +crashed", run("infra.sh", "status", **scratch).stdout)
    assert run("infra.sh", "down", "redis", **scratch).returncode == 0
    assert re.search(r"redis +stopped", run("infra.sh", "status", **scratch).stdout)


def test_a_recycled_pid_is_neither_running_nor_killed(scratch: dict[str, str]) -> None:
    """A pid file naming a process that start_bg did not start (its pid was reused): the part is
    not running, and starting it again must not signal that stranger's process group."""
    run_dir = Path(scratch["MM_STATE"], "run")
    run_dir.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group leader
    try:
        (run_dir / "redis.pid").write_text(f"{stranger.pid}\n")
        (run_dir / "redis.start").write_text("1\n")  # the one start_bg started began at tick 1
        assert re.search(r"redis +crashed", run("infra.sh", "status", **scratch).stdout)
        up = run("infra.sh", "up", "redis", **scratch)
        assert up.returncode == 0, up.stderr
        assert int((run_dir / "redis.pid").read_text()) != stranger.pid
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def _postgres_can_enter(path: Path) -> bool:
    probe = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
        "test",
        "-x",
        str(path),
    ]
    return subprocess.run(probe, cwd="/", check=False).returncode == 0


@pytest.mark.skipif(
    os.geteuid() != 0
    or shutil.which("setpriv") is None
    or not list(Path("/usr/lib/postgresql").glob("*/bin")),
    reason="needs root and PostgreSQL: as root, PostgreSQL runs as the postgres user",
)
def test_the_store_starts_from_a_directory_the_postgres_user_cannot_enter(
    scratch: dict[str, str], tmp_path: Path
) -> None:
    """A checkout under /root (mode 700): initdb could not access the data directory."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    scratch["MM_STATE"] = str(home / "state")
    assert not _postgres_can_enter(home)
    link = home / "state" / "data" / "postgres"
    try:
        up = run("infra.sh", "up", "ferretdb", cwd=home, timeout=180, **scratch)
        assert up.returncode == 0, up.stderr[-2000:]
        assert link.is_symlink()
        data = link.resolve()
        assert home not in data.parents and _postgres_can_enter(data)
        assert (data / "PG_VERSION").is_file()
        with MongoClient(f"mongodb://127.0.0.1:{scratch['MONGO_PORT']}/", timeoutMS=10_000) as client:
            client["scratch"]["docs"].insert_one({"_id": 1})
            assert client["scratch"]["docs"].find_one({"_id": 1}) == {"_id": 1}
        assert f"data: {data}" in run("infra.sh", "status", **scratch).stdout
        assert run("infra.sh", "tune", **scratch).returncode == 0  # the SQL file is read by us
        assert run("infra.sh", "down", "ferretdb", **scratch).returncode == 0
        # Two checkouts (state dirs) never share one: another state dir, another data dir.
        assert (
            run(
                "infra.sh", "up", "postgres", cwd=home, **(scratch | {"MM_STATE": str(home / "b")})
            ).returncode
            == 0
        )
        other = (home / "b" / "data" / "postgres").resolve()
        assert other != data
        run("infra.sh", "down", "postgres", **(scratch | {"MM_STATE": str(home / "b")}))
        shutil.rmtree(other, ignore_errors=True)
    finally:
        run("infra.sh", "down", "ferretdb", **scratch)
        if link.is_symlink():
            shutil.rmtree(link.resolve(), ignore_errors=True)


def _supervisor_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("MM_RUN", str(tmp_path))
    spec = importlib.util.spec_from_file_location("supervise", LOCAL / "supervise.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "supervise", module)
    spec.loader.exec_module(module)
    return module


def test_the_supervisor_backs_off_a_crash_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    supervise = _supervisor_module(monkeypatch, tmp_path)
    part = supervise.Part("payment", 8103)
    now, delays = 1000.0, []
    for _ in range(9):  # dies two seconds after each start
        delay = supervise.backoff(part, now, "process gone")
        delays.append(delay)
        now += delay
        part.last_start = now
        now += 2
    assert delays == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert supervise.backoff(part, now + 120, "process gone") == 0  # ran two minutes: not a loop


def test_the_supervisor_reads_liveness_like_the_scripts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    supervise = _supervisor_module(monkeypatch, tmp_path)
    assert supervise.pid_alive("redis") is None  # no pid file: stopped on purpose
    sleeper = subprocess.Popen(["sleep", "30"])
    (tmp_path / "redis.pid").write_text(f"{sleeper.pid}\n")
    assert supervise.pid_alive("redis") is True
    started = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    (tmp_path / "redis.start").write_text(f"{int(started) - 1}\n")  # that pid, another process
    assert supervise.pid_alive("redis") is False
    (tmp_path / "redis.start").write_text(f"{started}\n")
    assert supervise.pid_alive("redis") is True
    sleeper.kill()
    while proc_state(sleeper.pid) != "Z":  # ours to reap: it stays a zombie until we wait()
        time.sleep(0.01)
    assert supervise.pid_alive("redis") is False
    sleeper.wait()
    assert supervise.pid_alive("redis") is False


def test_an_installed_ferretdb_of_the_pinned_version_is_not_built_again() -> None:
    """`make up` (and every `platform.sh up`: the drill, the suite) runs install.sh; it used to
    rebuild FerretDB each time because the binary prints `version:` in lower case."""
    if not (ROOT / ".cache" / "bin" / "ferretdb").exists():
        pytest.skip("FerretDB not installed here (MONGODB_URL points elsewhere)")
    done = run("install.sh", "ferretdb", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "building FerretDB" not in done.stdout + done.stderr
