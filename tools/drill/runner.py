"""One fault after another, traffic flowing through each: recovery timed, the drained traffic
counted against what was owed, the money invariants checked (`ledger-check`).

Per fault: fresh subscribers join and are funded; traffic starts; after `lead_in` seconds the
fault is imposed; when it is over, the recovery is timed (everything ready, and staying ready
for `stable` seconds); the traffic goes on `tail` seconds more, then stops and every operation
gets its answer; the books are settled (`accounting.settle`) and `ledger-check` runs over the
whole platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.publisher import EventPublisher

from .accounting import Books
from .faults import Fault
from .platform import Platform, proc_state, wait_for
from .proxy import Toxiproxy, links
from .traffic import FUNDING, Member, Tally, Traffic


@dataclass
class Result:
    fault: str
    fault_seconds: float = 0.0  # how long the harm lasted (a restart: until the part was up)
    recover_seconds: float | None = None  # from the harm's end until all is ready and stays so
    went_unready: bool = False
    operations: int = 0
    settled_seconds: float = 0.0  # from the traffic's end until every effect was there
    lost: int = 0
    doubled: int = 0
    balance_off: int = 0
    unanswered: int = 0
    ledger_check: bool = False
    restarted_under_fault: bool = False  # the proxied service died and came back unproxied
    findings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.recover_seconds is not None
            and self.ledger_check
            and not (self.lost or self.doubled or self.balance_off or self.unanswered)
        )

    def line(self) -> str:
        recover = "never" if self.recover_seconds is None else f"{self.recover_seconds:5.1f} s"
        return (
            f"{self.fault:<24} fault {self.fault_seconds:5.1f} s  recovered in {recover:>7}"
            f"  ops {self.operations:4d}  lost {self.lost}  doubled {self.doubled}"
            f"  balances off {self.balance_off}  unanswered {self.unanswered}"
            f"  settled in {self.settled_seconds:4.1f} s"
            f"  ledger-check {'ok' if self.ledger_check else 'FAILED'}"
            f"  {'PASS' if self.passed else 'FAIL'}"
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"passed": self.passed}


@dataclass
class Pacing:
    lead_in: float = 3.0  # traffic before the fault
    tail: float = 3.0  # traffic after the recovery
    stable: float = 3.0  # ready this long in a row to count as recovered
    pace: float = 0.5  # seconds between operations
    members: int = 3  # subscribers per fault
    ready_timeout: float = 300.0
    settle_timeout: float = 180.0


class Drill:
    def __init__(self, platform: Platform, proxy: Toxiproxy, pacing: Pacing) -> None:
        self.platform = platform
        self.proxy = proxy
        self.pacing = pacing
        self.proxied: str | None = None  # the service now running through the proxy
        self.proxied_pid: int | None = None

    async def run(self, faults: list[Fault]) -> list[Result]:
        if not self.platform.alive("supervisor"):
            raise RuntimeError("the supervisor is not running (make up starts it): kills would not heal")
        await self.proxy.start(links(self.platform))
        results = []
        ocs = EventPublisher(
            KafkaAccess.local("ocs-mediation", f"127.0.0.1:{self.platform.port('kafka')}"), "ocs-mediation"
        )
        await ocs.start()
        try:
            async with Books() as books:
                for fault in faults:
                    try:
                        result = await self.one(fault, ocs, books)
                    except Exception as exc:  # the drill could not even count: a failure too
                        result = Result(fault.name, findings=[f"the drill failed: {exc!r}"])
                    print(result.line(), flush=True)
                    for finding in result.findings[:20]:
                        print(f"    {finding}", flush=True)
                    results.append(result)
        finally:
            await ocs.stop()
            await self._through_proxy(None)
        return results

    async def one(self, fault: Fault, ocs: EventPublisher, books: Books) -> Result:
        result = Result(fault.name)
        await wait_for(self.platform.all_ready, within=self.pacing.ready_timeout)
        await self._through_proxy(fault.through_proxy)
        members = [Member(self.platform) for _ in range(self.pacing.members)]
        traffic = Traffic(members, ocs, self.pacing.pace)
        try:
            await asyncio.gather(*(m.join() for m in members))
            funded, _ = await books.settle(members, within=self.pacing.settle_timeout)
            if not funded.clean:
                raise RuntimeError(f"the subscribers' funding ({FUNDING}) did not arrive: {funded.findings}")
            traffic.start()
            await asyncio.sleep(self.pacing.lead_in)
            started = time.monotonic()
            note = await fault.impose()
            result.findings += [note] if note else []
            result.fault_seconds = time.monotonic() - started
            recovered = await self._recovery(result)
            await asyncio.sleep(self.pacing.tail if recovered else 0)
            await traffic.stop()
            result.operations = traffic.sent
            result.restarted_under_fault = self._proxied_service_restarted()
            await wait_for(self.platform.all_ready, within=self.pacing.ready_timeout)
            tally, result.settled_seconds = await books.settle(members, self.pacing.settle_timeout)
            self._count(result, tally)
            result.ledger_check, output = await self._ledger_check()
            if not result.ledger_check:
                result.findings += output.splitlines()
        finally:
            await traffic.cancel()  # what is left when the drill itself failed
            await asyncio.gather(*(m.close() for m in members))
        return result

    async def _recovery(self, result: Result) -> bool:
        """Seconds from now until everything is ready and stays so for `stable` seconds."""
        since = time.monotonic()
        streak_from: float | None = None
        while time.monotonic() - since < self.pacing.ready_timeout:
            ready = await self.platform.all_ready()
            now = time.monotonic()
            if not ready:
                result.went_unready, streak_from = True, None
            elif streak_from is None:
                streak_from = now
            if streak_from is not None and now - streak_from >= self.pacing.stable:
                result.recover_seconds = streak_from - since
                return True
            await asyncio.sleep(0.25)
        result.findings.append(
            f"not ready within {self.pacing.ready_timeout:.0f} s: {await self.platform.not_ready()}"
        )
        return False

    @staticmethod
    def _count(result: Result, tally: Tally) -> None:
        result.lost, result.doubled = tally.lost, tally.doubled
        result.balance_off, result.unanswered = tally.balance_off, tally.unanswered
        result.findings += tally.findings
        if result.restarted_under_fault:
            result.findings.append("the service under test died and was started again without the proxy")

    async def _ledger_check(self) -> tuple[bool, str]:
        """`make ledger-check` over everything. Our own top-ups are all credited by now (settled);
        a 10 s grace keeps a payment of someone else's, relayed as we look, from being a finding."""
        binary = Path(self.platform.env["ROOT"]) / ".venv" / "bin" / "ledger-check"
        done = await asyncio.to_thread(
            subprocess.run,
            [str(binary), "--grace-seconds", "10"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return done.returncode == 0, done.stdout + done.stderr

    # -- the service under a network fault runs through the proxy ----------------------------------

    async def _through_proxy(self, service: str | None) -> None:
        """`service` (None: no service) restarted to reach Kafka, the store and Redis through the
        proxy; the one before restarted as `make up` runs it."""
        if service == self.proxied and (service is None or not self._proxied_service_restarted()):
            return
        if self.proxied is not None:
            await self.platform.run_script("platform.sh", "restart", self.proxied)
            self.proxied = self.proxied_pid = None
        if service is not None:
            await self._ensure_proxied_kafka_listener()
            overrides = dict(link.setting() for link in links(self.platform))
            await self.platform.run_script("platform.sh", "restart", service, env=overrides)
            self.proxied, self.proxied_pid = service, self.platform.pid(service)
        await wait_for(self.platform.all_ready, within=self.pacing.ready_timeout)

    def _proxied_service_restarted(self) -> bool:
        if self.proxied is None:
            return False
        pid = self.platform.pid(self.proxied)
        return pid != self.proxied_pid or pid is None or proc_state(pid) in (None, "Z", "X")

    async def _ensure_proxied_kafka_listener(self) -> None:
        """The broker's second listener (the one the proxy forwards to), by a restart if missing."""
        port = int(self.platform.env["KAFKA_PROXIED_PORT"])
        if await _port_open(port):
            return
        print(f"restarting Kafka with its proxied listener on {port} (KAFKA_PROXIED_PORT)", flush=True)
        await self.platform.run_script("platform.sh", "restart", "kafka")
        await wait_for(self.platform.all_ready, within=self.pacing.ready_timeout)


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def toxiproxy(platform: Platform) -> AsyncIterator[Toxiproxy]:
    proxy = Toxiproxy(platform)
    try:
        yield proxy
    finally:
        await proxy.stop()
