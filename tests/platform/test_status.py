"""`make status` on the running platform: the processes (infra, services, gateway, Prometheus,
the supervisor) and the overview the dashboards show: readiness, lag per group from the
broker, outboxes, dead letters."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from mobi_contracts import CONSUMER_GROUPS

from .conftest import ROOT, Platform, run, script_env, wait_for

pytestmark = pytest.mark.integration
OUTBOX_SERVICES = ("payment", "vas", "loyalty", "stores")  # those running an outbox sweeper


def make_status() -> str:
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "status"],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def section(text: str, title: str) -> str:
    """The lines under the heading starting with `title`, up to the next blank line."""
    return text.split(f"\n{title}", 1)[1].split("\n\n", 1)[0]


async def test_status_shows_the_processes_and_the_overview(healthy: Platform) -> None:
    out = make_status()
    for part in ("kafka", "ferretdb", "redis", "gateway", "prometheus", "supervisor", "lag-exporter"):
        assert re.search(rf"^  {part} +running \(pid \d+\)", out, re.M), part
    services = section(out, "Services")
    for name in healthy.services:
        assert re.search(rf"^  {name} +ok +yes +ok +ok +ok +ok$", services, re.M), (name, services)
    lag = section(out, "Consumer lag per group (lag exporter")
    for group in CONSUMER_GROUPS:
        # Every group has members (3 per service process) and a lag, as the broker has them
        # (and when its committed offsets last moved, once it has committed any).
        assert re.search(rf"^  {group.name} +\d+ +[1-9]\d* +(\d+ s ago|-)$", lag, re.M), (group.name, lag)
    outboxes = section(out, "Outboxes")
    for name in OUTBOX_SERVICES:
        assert re.search(rf"^  {name} +\S+ +\d+\.\d s +\(\d+ pending\)", outboxes, re.M), (name, outboxes)
    dead = section(out, "Dead letters")
    for name in healthy.services:
        assert re.search(
            rf"^  {name} +\d+ since the service started, \d+ on dlq\.{name}-service$", dead, re.M
        )


async def test_status_shows_a_stopped_service_and_reads_the_broker_itself_without_the_exporter(
    healthy: Platform,
) -> None:
    assert run("platform.sh", "stop-app", "lag-exporter").returncode == 0
    assert run("platform.sh", "stop-app", "stores").returncode == 0
    try:

        async def stores_group_empty() -> str | None:
            out = make_status()
            lag = section(out, "Consumer lag per group (read from the broker now")
            return out if re.search(r"^  stores-service +\d+ +0 ", lag, re.M) else None

        await wait_for(stores_group_empty, timeout=60, interval=1)
        out = make_status()
        assert re.search(r"^  stores +down +- ", section(out, "Services"), re.M)
        assert re.search(r"^  lag-exporter +stopped", out, re.M)
    finally:
        started = time.monotonic()
        assert run("platform.sh", "start-app", "stores", "lag-exporter").returncode == 0
        assert time.monotonic() - started < 120
