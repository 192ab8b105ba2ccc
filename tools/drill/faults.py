"""The faults of the drill. Each `impose` does its harm and returns when the harm is over (a
kill at once, a restart when the part is started again, a network fault when its time is up);
the drill times the recovery from there.

- kill NAME: SIGKILL of a service; the supervisor starts it again (as Kubernetes would).
- restart kafka|store|redis: the part stopped (TERM, then KILL after the grace) and started
  again by deploy/local's scripts; the store is FerretDB and its PostgreSQL, both.
- cut|latency|drop SERVICE-LINK: one link of a service that runs through Toxiproxy (`proxy.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .platform import Platform
from .proxy import Toxiproxy

SERVICES = ("account", "payment", "vas", "loyalty", "notify", "stores")
INFRA = ("kafka", "store", "redis")
LINKS = ("kafka", "store", "redis")
NETWORK = ("cut", "latency", "drop")


@dataclass(frozen=True)
class Fault:
    name: str
    impose: Callable[[], Awaitable[str | None]]  # what to note about it (None: nothing)
    through_proxy: str | None = None  # the service that must run through the proxy


def kill(platform: Platform, service: str) -> Fault:
    async def impose() -> str | None:
        platform.sigkill(service)
        return None

    return Fault(f"kill {service}", impose)


def restart(platform: Platform, part: str) -> Fault:
    async def impose() -> str | None:
        try:
            if part == "store":
                # stop-app leaves a part stopped (the supervisor leaves it alone); ferretdb's
                # start starts its PostgreSQL first.
                await platform.run_script("platform.sh", "stop-app", "ferretdb")
                await platform.run_script("platform.sh", "stop-app", "postgres")
                await platform.run_script("platform.sh", "start", "ferretdb")
            else:
                await platform.run_script("platform.sh", "restart", part)
        except RuntimeError as exc:
            # A start that failed (on a loaded machine the supervisor may restart a slow JVM
            # under the script): the supervisor starts it again; the recovery is timed anyway.
            return f"the restart script failed, the supervisor takes over: {str(exc)[-300:]}"
        return None

    return Fault(f"restart {part}", impose)


def network(proxy: Toxiproxy, service: str, kind: str, link: str, hold: float) -> Fault:
    async def impose() -> str | None:
        if kind == "cut":
            await proxy.cut(link)
            try:
                await asyncio.sleep(hold)
            finally:
                await proxy.end_cut(link)
        elif kind == "latency":
            await proxy.latency(link, latency_ms=300, jitter_ms=100)
            try:
                await asyncio.sleep(hold)
            finally:
                await proxy.heal(link)
        else:
            await proxy.flap(link, seconds=hold, every=3.0)
        return None

    return Fault(f"{kind} {service}-{link}", impose, through_proxy=service)


def full(platform: Platform, proxy: Toxiproxy, targets: list[str], hold: float) -> list[Fault]:
    """Every fault: each service killed, each piece of infrastructure restarted, then each
    network fault on each link of each target service."""
    faults = [kill(platform, s) for s in SERVICES if s in platform.services]
    faults += [restart(platform, p) for p in INFRA if p != "store" or platform.runs_store]
    faults += [network(proxy, t, k, link, hold) for t in targets for link in LINKS for k in NETWORK]
    return faults


def short(platform: Platform, proxy: Toxiproxy, hold: float) -> list[Fault]:
    """The test command's drill: the ledger's service killed, the broker restarted, and the
    ledger's service cut off from the broker."""
    return [
        kill(platform, "account"),
        restart(platform, "kafka"),
        network(proxy, "account", "cut", "kafka", hold),
    ]
