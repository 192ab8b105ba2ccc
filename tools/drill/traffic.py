"""Real flows while a fault lasts, and what each was owed.

Subscribers are provisioned as the operator's BSS does (the account service's internal route),
log in over mobile data through the gateway and join the loyalty programme. Their traffic goes
where the app's and outside parties' would: card top-ups through the gateway paid at the
provider's sandbox (which notifies the payment service through the gateway and retries until
answered), scratch cards minted by the operator's batch import and scratched in the app, rated
calls published by the charging system (`ocs-mediation`, an outside party) on network.usage.v1,
a VAS subscribed and confirmed in the app. Loyalty points are earned by the top-ups.

Every operation is retried as its client would retry it (the same Idempotency-Key, the same
scratch card, the same usage event) until it gets a definitive answer, so what each subscriber
is owed is known exactly: `Sent`. `Traffic.run` sends until told to stop; `Member.account`
reads what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from mobi_contracts.topics import NETWORK_USAGE
from servicekit.internal_keys import caller_headers
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import usage_recorded

from .platform import Platform

CARRIER_PROXY = "127.0.0.2"  # inside CARRIER_PROXY_CIDRS of the local gateway: mobile data
OPS_HEADERS = caller_headers("ops", None)
APPROVED_VISA = "4111111111111111"
SANDBOX_OTP = "123456"
VAS_CODE, VAS_PRICE = "MCLIP", 3_000
FUNDING = 200_000
GIVE_UP_AFTER = 300.0  # seconds an operation is retried before the drill calls it unanswered


class Unanswered(Exception):
    """An operation that never got a definitive answer: the drill fails on it."""


@dataclass
class Sent:
    """What one subscriber is owed: top-ups (id -> amount), calls (usage id -> charge), VAS
    subscriptions confirmed (each charged once)."""

    topups: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    vas: int = 0
    unanswered: list[str] = field(default_factory=list)

    def main(self) -> int:
        return sum(self.topups.values()) - sum(self.usage.values()) - VAS_PRICE * self.vas


@dataclass
class Tally:
    """One fault's count: effects missing, effects more than once, and balances that differ
    from what the subscriber is owed (they follow from the first two, or are a finding)."""

    lost: int = 0
    doubled: int = 0
    balance_off: int = 0
    unanswered: int = 0
    findings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.balance_off or self.unanswered)

    def add(self, other: Tally) -> None:
        self.lost += other.lost
        self.doubled += other.doubled
        self.balance_off += other.balance_off
        self.unanswered += other.unanswered
        self.findings += other.findings


async def retried(what: str, attempt: Callable[[], Awaitable[Any]], pause: float = 0.5) -> Any:
    """`attempt()` until it returns something other than None (None: try again, as after a 5xx,
    a timeout or a refused connection); Unanswered after GIVE_UP_AFTER seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + GIVE_UP_AFTER
    while True:
        try:
            result = await attempt()
        except (httpx.HTTPError, OSError):
            result = None
        if result is not None:
            return result
        if loop.time() > end:
            raise Unanswered(what)
        await asyncio.sleep(pause)


class Member:
    """A fresh prepaid subscriber in the loyalty programme, funded by a scratch card."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.msisdn = "8478" + f"{random.randrange(10**7):07d}"
        self.sent = Sent()
        self.auth: dict[str, str] = {}
        self.app = httpx.AsyncClient(
            base_url=platform.url("gateway"),
            transport=httpx.AsyncHTTPTransport(local_address=CARRIER_PROXY),
            timeout=20.0,
            trust_env=False,
        )

    async def close(self) -> None:
        await self.app.aclose()

    async def join(self) -> None:
        async with httpx.AsyncClient(base_url=self.platform.url("account"), trust_env=False) as account:
            r = await account.put(
                f"/internal/v1/subscribers/{self.msisdn}",
                json={"name": "Khách Diễn Tập", "plan": "prepaid", "status": "active"},
                headers=OPS_HEADERS,
            )
            r.raise_for_status()
        r = await self.app.post("/api/v1/auth/header-login", headers={"X-MSISDN": self.msisdn})
        r.raise_for_status()
        self.auth = {"Authorization": f"Bearer {r.json()['access_token']}", "X-MSISDN": self.msisdn}
        r = await self.app.post("/api/v1/me/loyalty/enroll", headers=self.auth)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"enrolment of {self.msisdn}: {r.status_code} {r.text}")
        await self.scratch_card(FUNDING)

    # -- the flows ---------------------------------------------------------------------------------

    async def card_topup(self, amount: int) -> None:
        key = f"drill-{uuid.uuid4().hex}"

        async def start() -> dict[str, Any] | None:
            r = await self.app.post(
                "/api/v1/me/topups/card",
                json={"amount_vnd": amount, "method": "international"},
                headers=self.auth | {"Idempotency-Key": key},
            )
            return r.json() if r.status_code == 201 else None

        started = await retried(f"card top-up of {self.msisdn}", start)
        async with httpx.AsyncClient(
            base_url=self.platform.url("payprov"), timeout=30.0, trust_env=False
        ) as provider:
            r = await provider.post(
                "/sandbox/pay",
                json={"payment_url": started["payment_url"], "card": APPROVED_VISA, "otp": SANDBOX_OTP},
            )
        if r.status_code != 200 or r.json().get("response_code") != "00":
            raise Unanswered(f"the provider refused payment {started['payment_id']}: {r.text}")
        # Paid at the provider: from here it must be credited exactly once, whatever fails.
        self.sent.topups[started["payment_id"]] = amount

    async def scratch_card(self, value: int) -> None:
        serial = f"{uuid.uuid4().int % 10**14:014d}"
        pin = f"{uuid.uuid4().int % 10**13:013d}"
        card = {
            "serial": serial,
            "pin": pin,
            "face_value_vnd": value,
            "expires_at": "2030-12-31T00:00:00+00:00",
        }

        async def mint() -> bool | None:
            async with httpx.AsyncClient(base_url=self.platform.url("payment"), trust_env=False) as payment:
                r = await payment.post(
                    "/internal/v1/scratch-cards/batches",
                    json={"batch_id": f"drill-{serial}", "cards": [card]},
                    headers=OPS_HEADERS,
                    timeout=20.0,
                )
            return True if r.status_code in (200, 201, 409) else None

        async def scratch() -> dict[str, Any] | None:
            r = await self.app.post(
                "/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": pin}, headers=self.auth
            )
            return r.json() if r.status_code in (200, 201) else None

        await retried(f"minting card {serial}", mint)
        used = await retried(f"scratch card {serial} of {self.msisdn}", scratch)
        self.sent.topups[used["topup_id"]] = value

    async def call(self, ocs: EventPublisher, charge: int) -> None:
        """A rated call from the charging system; republished as it is until Kafka takes it."""
        event = usage_recorded(self.msisdn, charge, producer="ocs-mediation")

        async def publish() -> bool:
            await asyncio.wait_for(ocs.publish(NETWORK_USAGE.name, [event]), timeout=20)
            return True

        await retried(f"usage {event.data.usage_id}", _catching(publish))
        self.sent.usage[event.data.usage_id] = charge

    async def subscribe_vas(self) -> None:
        key = f"drill-{uuid.uuid4().hex[:16]}"

        async def subscribe() -> str | None:
            r = await self.app.post(
                f"/api/v1/me/vas/{VAS_CODE}/subscribe", headers=self.auth | {"Idempotency-Key": key}
            )
            return str(r.json()["id"]) if r.status_code == 201 else None

        sid = await retried(f"VAS subscription of {self.msisdn}", subscribe)

        async def confirm() -> bool | None:
            r = await self.app.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm", headers=self.auth)
            if r.status_code == 200:
                return True
            # A confirm whose answer was lost finds it confirmed already.
            seen = await self.app.get(f"/api/v1/me/vas/subscriptions/{sid}", headers=self.auth)
            return True if seen.status_code == 200 and seen.json().get("status") == "active" else None

        await retried(f"confirming VAS {sid}", confirm)
        self.sent.vas += 1

    # -- what happened -----------------------------------------------------------------------------

    async def main_balance(self) -> int | None:
        try:
            r = await self.app.get("/api/v1/me/balances", headers=self.auth)
        except httpx.HTTPError:
            return None
        return int(r.json()["main"]["balance_vnd"]) if r.status_code == 200 else None

    async def earnings(self) -> list[str] | None:
        """The top-ups the points ledger shows an earning for (one entry each, if all is well)."""
        causes: list[str] = []
        before: int | None = None
        while True:
            params: dict[str, int] = {"limit": 100} | ({"before": before} if before else {})
            try:
                r = await self.app.get("/api/v1/me/loyalty/history", headers=self.auth, params=params)
            except httpx.HTTPError:
                return None
            if r.status_code != 200:
                return None
            page = r.json()
            causes += [
                str(i["detail"].get("cause_id"))
                for i in page["items"]
                if i["kind"] == "earn" and i["detail"].get("source") == "topup"
            ]
            before = page.get("next_before")
            if not before:
                return causes


def _catching(attempt: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool | None]]:
    """Publishing fails with Kafka's own errors while the broker is away: try again."""

    async def guarded() -> bool | None:
        try:
            return await attempt()
        except Exception:
            return None

    return guarded


class Traffic:
    """Sends the flows of `members` in turn, one every `pace` seconds, until `stop()`; each runs
    to its answer (bounded in number at once)."""

    KINDS = ("card", "call", "scratch", "call", "card", "call")

    def __init__(self, members: list[Member], ocs: EventPublisher, pace: float, at_once: int = 12) -> None:
        self.members = members
        self.ocs = ocs
        self.pace = pace
        self.gate = asyncio.Semaphore(at_once)
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sender = asyncio.create_task(self._send())

    async def stop(self) -> None:
        """Stops sending and waits for every operation to get its answer."""
        self.stopping.set()
        if self.sender is not None:
            await self.sender
        await asyncio.gather(*self.tasks)

    async def cancel(self) -> None:
        """Abandons whatever is still running (after `stop`, nothing is)."""
        running = [t for t in (self.sender, *self.tasks) if t is not None and not t.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    @property
    def sent(self) -> int:
        return len(self.tasks)

    async def _send(self) -> None:
        kinds = itertools.cycle(self.KINDS)
        turns = itertools.cycle(self.members)
        vas_due = list(self.members)  # one VAS each, early in the fault
        while not self.stopping.is_set():
            member = next(turns)
            if member in vas_due and len(self.tasks) >= len(self.members):
                vas_due.remove(member)
                self._spawn(member, member.subscribe_vas)
            else:
                self._spawn(member, self._flow(member, next(kinds)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.pace)

    def _flow(self, member: Member, kind: str) -> Callable[[], Awaitable[None]]:
        if kind == "card":
            amount = random.choice((10_000, 20_000, 50_000))
            return lambda: member.card_topup(amount)
        if kind == "scratch":
            value = random.choice((10_000, 20_000))
            return lambda: member.scratch_card(value)
        charge = random.randrange(2, 16) * 100
        return lambda: member.call(self.ocs, charge)

    def _spawn(self, member: Member, flow: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            async with self.gate:
                try:
                    await flow()
                except Unanswered as exc:
                    member.sent.unanswered.append(str(exc))
                except Exception as exc:  # a flow the drill did not foresee: counted, not fatal
                    member.sent.unanswered.append(repr(exc))

        self.tasks.append(asyncio.create_task(guarded()))
