"""The supervisor (deploy/local/supervise.py) on the running platform: what dies is started
again, a wedged store is restarted, and no top-up is lost meanwhile. Each test waits until the
whole platform is ready again (the `healthy` fixture)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid

import httpx
import pytest
from pymongo import MongoClient, UpdateOne
from pymongo.errors import PyMongoError

from .conftest import ROOT, Platform, port_open, run, script_env, wait_for
from .money import Subscriber, new_scratch_card

pytestmark = pytest.mark.integration


def test_make_status_shows_the_supervisor(platform: Platform) -> None:
    status = run("platform.sh", "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"supervisor +running \(pid \d+\)", status.stdout), status.stdout


async def restarted(platform: Platform, name: str, old_pid: int) -> bool:
    pid = platform.pid(name)
    return pid is not None and pid != old_pid and platform.alive(name) and port_open(platform.port(name))


async def test_a_killed_service_is_started_again(healthy: Platform) -> None:
    platform = healthy
    log_before = len(platform.supervisor_log())
    killed = platform.sigkill("payment")
    took = await wait_for(lambda: _service_ready(platform, "payment", killed), timeout=60)
    print(f"payment SIGKILLed -> ready again in {took:.1f} s")
    assert "payment: crashed: start" in platform.supervisor_log()[log_before:]


async def _service_ready(platform: Platform, name: str, old_pid: int) -> bool:
    if not await restarted(platform, name, old_pid):
        return False
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        try:
            return (await client.get(platform.url(name) + "/ready")).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.mark.parametrize("name", ["redis", "kafka"])
async def test_killed_infrastructure_is_started_again_and_events_flow(healthy: Platform, name: str) -> None:
    platform = healthy
    if platform.env.get(f"{name.upper()}_EXTERNAL") or not platform.pid(name):
        pytest.skip(f"{name} is not run by this platform")
    killed = platform.sigkill(name)
    took = await wait_for(lambda: restarted(platform, name, killed), timeout=120)
    ready = await wait_for(platform.all_ready, timeout=120)
    print(f"{name} SIGKILLed -> port open again in {took:.1f} s, platform ready {ready:.1f} s later")
    # Money still moves: a scratch-card top-up goes through Kafka to the account service.
    async with Subscriber(platform) as me:
        serial, pin = await new_scratch_card(platform, 15_000)
        assert await me.redeem(serial, pin) == 201
        await wait_for(lambda: _balance_is(me, 15_000), timeout=60)


async def test_make_up_right_after_a_sigkill(healthy: Platform) -> None:
    """`make up` at once after a SIGKILL: the process is a zombie for a moment and the supervisor
    starts it at the same time; `make up` must neither take it for running nor race it."""
    platform = healthy
    killed = platform.sigkill("payment")
    up = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "up"], env=script_env(), capture_output=True, text=True, timeout=600
    )
    assert up.returncode == 0, up.stderr[-3000:]
    assert await _service_ready(platform, "payment", killed)


async def test_a_part_stopped_on_purpose_is_left_stopped(healthy: Platform) -> None:
    platform = healthy
    name = "payment-provider-sandbox"
    assert run("platform.sh", "stop-app", name).returncode == 0
    try:
        await asyncio.sleep(3)  # the supervisor looks every second
        assert platform.pid(name) is None
        assert not port_open(platform.port("payprov"))
    finally:
        assert run("platform.sh", "start-app", name).returncode == 0


# --- the wedged store --------------------------------------------------------------------------


def wedge_the_store(url: str, database: str) -> str:
    """What wedges FerretDB 1.24 on PostgreSQL for good: one update command of 500 statements
    (a plain unordered bulk_write of UpdateOne) on existing documents, from an outside client."""
    with MongoClient(url, timeoutMS=180_000) as client:
        things = client[database]["things"]
        things.insert_many([{"_id": i, "v": 0} for i in range(500)])
        try:
            result = things.bulk_write(
                [UpdateOne({"_id": i}, {"$set": {"v": 1}}) for i in range(500)], ordered=False
            )
            return f"bulk write done ({result.modified_count} modified)"
        except PyMongoError as exc:
            return f"bulk write failed: {type(exc).__name__}"  # FerretDB was restarted under it


async def store_failing(platform: Platform) -> bool:
    """The money services' readiness reports the store failing (the others may answer from
    what they hold in memory, e.g. the stores catalogue)."""
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        for name in ("account", "payment"):
            try:
                r = await client.get(platform.url(name) + "/ready")
            except httpx.HTTPError:
                return False
            if r.status_code != 503 or r.json()["checks"]["store"] == "ok":
                return False
    return True


async def services_ready(platform: Platform) -> bool:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        for name in platform.services:
            try:
                if (await client.get(platform.url(name) + "/ready")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


async def _balance_is(me: Subscriber, expected: int) -> bool:
    return await me.balance() == expected


async def test_a_wedged_store_is_restarted_and_no_top_up_is_lost(healthy: Platform) -> None:
    platform = healthy
    if not platform.has_ferretdb or platform.env["FERRETDB_BACKEND"] != "postgresql":
        pytest.skip("the wedge is FerretDB's on PostgreSQL")
    log_before = len(platform.supervisor_log())
    database = f"scratch_wedge_{uuid.uuid4().hex[:8]}"
    async with Subscriber(platform) as me:
        cards = [await me.start_card_topup(amount) for amount in (10_000, 20_000, 30_000)]
        serial, pin = await new_scratch_card(platform, 40_000)
        await me.pay(cards[0])  # its notification and credit meet the wedge
        began = time.monotonic()
        wedge = asyncio.create_task(asyncio.to_thread(wedge_the_store, platform.env["MONGODB_URL"], database))
        try:
            await wait_for(lambda: store_failing(platform), timeout=30)
            # While wedged: two payments (the provider retries its notifications until we
            # acknowledge them) and a scratch card that gets no answer in time.
            _, _, during = await asyncio.gather(
                me.pay(cards[1]), me.pay(cards[2]), me.redeem(serial, pin, timeout=5)
            )
            await wait_for(
                lambda: services_ready(platform), timeout=max(1.0, 60 - (time.monotonic() - began))
            )
            recovered = time.monotonic() - began
            print(f"wedge -> both services ready again in {recovered:.1f} s; {await wedge}")
            log = platform.supervisor_log()[log_before:]
            assert re.search(r"ferretdb: \d+ store probes missed: restart", log), log
            # The app retries the scratch card: taken now, or taken already by the first try.
            retried = await me.redeem(serial, pin)
            assert retried in (201, 409) and not (during == 201 and retried == 201), (during, retried)
            # Every top-up credited exactly once.
            await wait_for(lambda: _balance_is(me, 100_000), timeout=120)
            await asyncio.sleep(2)
            assert await me.balance() == 100_000
            topups = await me.topups()
            assert sorted(t["amount_vnd"] for t in topups) == [10_000, 20_000, 30_000, 40_000]
            assert len({t["id"] for t in topups}) == 4
        finally:
            if not wedge.done():  # still wedged: do by hand what the supervisor should have done
                run("platform.sh", "restart", "ferretdb", STOP_GRACE="2")
            await asyncio.wait_for(wedge, timeout=60)
            with MongoClient(platform.env["MONGODB_URL"], timeoutMS=30_000) as client:
                client.drop_database(database)
