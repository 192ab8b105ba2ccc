"""The local platform's supervisor: what Kubernetes does for the platform in production.

`make up` starts it (platform.sh), `make down` stops it first, `make status` shows it; it logs
what it does to $LOGS/supervisor.log. It holds no start command: `platform.sh parts` lists the
platform's processes and `platform.sh start|restart NAME` runs the code `make up` runs.

- A part whose pid file names a process that is gone (or a zombie) has crashed: it is started
  again. One that crashes again within a minute of its last start waits 1, 2, 4 ... 60 s first,
  so a crash loop does not spin. A part alive whose port stays closed for HUNG_AFTER seconds is
  restarted (a TCP liveness probe). A part without a pid file was stopped on purpose
  (`platform.sh stop-app`, a test) and is left alone.
- The store is probed with real operations: a find and an update of one document in
  mm_supervisor.probe, under a deadline. FerretDB 1.24 on PostgreSQL wedges for good when a
  client sends an update command with many statements: its goroutines wait for backend
  connections while the pool's connections (idle in PostgreSQL) stay checked out, and every
  service's readiness fails ("store: TimeoutError"). After PROBE_MISSES misses in a row the
  supervisor restarts FerretDB, and only it; the services' drivers reconnect by themselves.

Each action holds the part's lock ($RUN/NAME.lock, the one start_bg and stop_bg take) and is
re-checked under it, so it never races `make up`, `make down` or a deliberate stop. The liveness
test here is only a trigger: under the lock, platform.sh judges again with env.sh's pid_state.

Its metrics (SUPERVISOR_METRICS_PORT, scraped by the local Prometheus; alerts in
deploy/prometheus/rules/slo.yml): `supervisor_restarts_total{part,reason}` (crashed, hung,
wedged), `supervisor_store_probes_total{result}` and `supervisor_store_probe_misses` (in a row).

Settings (environment, seconds): SUPERVISE_EVERY 1, HUNG_AFTER 60, PROBE_EVERY 2,
PROBE_DEADLINE 3, PROBE_MISSES 3, BACKOFF_MAX 60, SUPERVISOR_METRICS_PORT (unset: no metrics).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from pymongo import MongoClient
from pymongo.errors import PyMongoError

HERE = Path(__file__).resolve().parent
PLATFORM = str(HERE / "platform.sh")
RUN = Path(os.environ["MM_RUN"])
EVERY = float(os.environ.get("SUPERVISE_EVERY", "1"))
HUNG_AFTER = float(os.environ.get("HUNG_AFTER", "60"))
PROBE_EVERY = float(os.environ.get("PROBE_EVERY", "2"))
PROBE_DEADLINE = float(os.environ.get("PROBE_DEADLINE", "3"))
PROBE_MISSES = int(os.environ.get("PROBE_MISSES", "3"))
BACKOFF_MAX = float(os.environ.get("BACKOFF_MAX", "60"))
METRICS_PORT = int(os.environ.get("SUPERVISOR_METRICS_PORT") or 0)
STABLE_AFTER = 60.0  # a part that ran this long before dying is not crash-looping

# Its own registry: the supervisor's figures only, and a second import (tests) registers again.
METRICS = CollectorRegistry()
RESTARTS = Counter(
    "supervisor_restarts_total",
    "Parts the supervisor started again, by why: crashed (process gone), hung (port closed), "
    "wedged (the store missed its probes)",
    ["part", "reason"],
    registry=METRICS,
)
STORE_PROBES = Counter(
    "supervisor_store_probes_total", "Store probes, by result: ok, missed", ["result"], registry=METRICS
)
STORE_PROBE_MISSES = Gauge("supervisor_store_probe_misses", "Store probes missed in a row", registry=METRICS)

log = logging.getLogger("supervisor")


@dataclass
class Part:
    name: str
    port: int | None
    last_start: float = float("-inf")
    streak: int = 0  # starts in a row, each less than STABLE_AFTER after the previous one
    due: float | None = None  # when the pending start of a crashed part may run
    closed_since: float | None = None


def pid_alive(name: str) -> bool | None:
    """None: no pid file. Else whether its process lives: not gone, not a zombie, and started
    when start_bg recorded (not a recycled pid): the rule of env.sh's pid_state."""
    pid_file, start_file = RUN / f"{name}.pid", RUN / f"{name}.start"
    try:
        pid = int(pid_file.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        started = start_file.read_text().strip() if start_file.exists() else fields[19]
    except (FileNotFoundError, IndexError):
        return False
    return fields[0] not in "ZX" and fields[19] == started


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def read_parts(known: dict[str, Part]) -> dict[str, Part]:
    out = subprocess.run([PLATFORM, "parts"], capture_output=True, text=True, timeout=60, check=True)  # noqa: S603
    parts = {}
    for line in out.stdout.splitlines():
        name, port = line.split()
        if name != "supervisor":
            parts[name] = known.get(name) or Part(name, None if port == "-" else int(port))
    return parts


def act(part: Part, command: str, why: str, reason: str, **env: str) -> bool:
    """Runs `platform.sh COMMAND NAME` holding the part's lock, if the part still has a pid file
    (without one it was stopped on purpose meanwhile). True when it ran and succeeded."""
    with open(RUN / f"{part.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (RUN / f"{part.name}.pid").exists():
            log.info("%s: stopped on purpose meanwhile; left alone", part.name)
            return False
        log.info("%s: %s: %s", part.name, why, command)
        RESTARTS.labels(part.name, reason).inc()
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 (our own script)
            [PLATFORM, command, part.name],
            env={**os.environ, "MM_LOCK_HELD": part.name, **env},
            timeout=600,
            check=False,
        )
        part.last_start, part.due, part.closed_since = time.monotonic(), None, None
        took = time.monotonic() - started
        if result.returncode == 0:
            log.info("%s: up again (%s took %.1f s)", part.name, command, took)
            return True
        log.warning("%s: %s failed after %.1f s (see its log)", part.name, command, took)
        return False


def backoff(part: Part, now: float, what: str) -> float:
    """Seconds to wait before restarting: none, unless the part is crash-looping (it was started
    less than STABLE_AFTER ago), then 1, 2, 4 ... BACKOFF_MAX."""
    part.streak = part.streak + 1 if now - part.last_start < STABLE_AFTER else 0
    delay = 0.0 if part.streak == 0 else min(BACKOFF_MAX, 2.0 ** (part.streak - 1))
    log.warning("%s: %s%s", part.name, what, f"; restarting in {delay:.0f} s (crash loop)" if delay else "")
    return delay


def watch(part: Part, now: float) -> None:
    alive = pid_alive(part.name)
    if alive is None:  # stopped on purpose, or never started
        part.due = part.closed_since = None
        return
    if not alive:
        if part.due is None:
            part.due = now + backoff(part, now, "process gone")
        if now >= part.due:
            act(part, "start", "crashed", "crashed")
        return
    part.due = None
    if part.port is None or port_open(part.port):
        part.closed_since = None
    elif part.closed_since is None:
        part.closed_since = now
    elif now - part.closed_since >= HUNG_AFTER and now - part.last_start >= HUNG_AFTER:
        act(part, "restart", f"alive but port {part.port} closed for {now - part.closed_since:.0f} s", "hung")


class StoreProbe:
    """An update and a find of one document in mm_supervisor.probe, under PROBE_DEADLINE: what
    the services need from the store. The driver's handshake answers on a wedged FerretDB."""

    def __init__(self, url: str) -> None:
        deadline_ms = int(PROBE_DEADLINE * 1000)
        self.client: MongoClient[dict[str, object]] = MongoClient(
            url, timeoutMS=deadline_ms, serverSelectionTimeoutMS=deadline_ms, appname="supervisor"
        )
        self.collection = self.client["mm_supervisor"]["probe"]
        self.misses = 0
        self.next = 0.0
        self.due: float | None = None  # when the pending restart of FerretDB may run

    def check(self, ferretdb: Part, now: float) -> None:
        # Not while FerretDB is down (watch() starts it) nor in the first moments of a new one.
        if now < self.next or not pid_alive(ferretdb.name) or now - ferretdb.last_start < PROBE_DEADLINE:
            return
        self.next = now + PROBE_EVERY
        started = time.monotonic()
        try:
            self.collection.update_one({"_id": "probe"}, {"$set": {"at": time.time()}}, upsert=True)
            self.collection.find_one({"_id": "probe"})
        except PyMongoError as exc:
            self.misses += 1
            STORE_PROBES.labels("missed").inc()
            STORE_PROBE_MISSES.set(self.misses)
            took = time.monotonic() - started
            log.warning(
                "store probe missed (%s after %.1f s), %d in a row", type(exc).__name__, took, self.misses
            )
            if self.misses >= PROBE_MISSES:
                if self.due is None:
                    self.due = now + backoff(ferretdb, now, "the store is wedged")
                if now >= self.due:
                    act(ferretdb, "restart", f"{self.misses} store probes missed", "wedged", STOP_GRACE="1")
                    self.misses, self.due = 0, None
                    STORE_PROBE_MISSES.set(0)
            return
        STORE_PROBES.labels("ok").inc()
        if self.misses:
            log.info("store answers again after %d missed probes", self.misses)
        self.misses, self.due = 0, None
        STORE_PROBE_MISSES.set(0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parts = read_parts({})
    if METRICS_PORT:
        # Every series from 0, so that the first restart is an increase Prometheus can see.
        for name in parts:
            for reason in ("crashed", "hung", *(("wedged",) if name == "ferretdb" else ())):
                RESTARTS.labels(name, reason)
        for result in ("ok", "missed"):
            STORE_PROBES.labels(result)
        start_http_server(METRICS_PORT, addr="127.0.0.1", registry=METRICS)
    probe = StoreProbe(os.environ["MONGODB_URL"]) if "ferretdb" in parts else None
    log.info("watching %s; store probe %s", " ".join(parts), "on" if probe else "off (no FerretDB here)")
    refreshed = time.monotonic()
    while True:
        try:
            now = time.monotonic()
            if now - refreshed > 30:  # SERVICES may have changed since
                parts, refreshed = read_parts(parts), now
            for part in parts.values():
                watch(part, time.monotonic())
            if probe and "ferretdb" in parts:
                probe.check(parts["ferretdb"], time.monotonic())
        except Exception:  # a failed look or start is logged; the watch goes on
            log.exception("supervisor step failed")
        time.sleep(EVERY)


if __name__ == "__main__":
    main()
