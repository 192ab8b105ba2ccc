"""Scheduled work: expiry, monthly tenure points and tier recompute (one replica at a time,
with the time passed in, so tests and operators can run it "on" any date), and the recovery
pass that completes transfers a crash left half done.

Each run is exactly once by construction: a month's points expire under the key
`expire:<member>:<month>` (a second run, for the same `now` or a later one, finds the key and
changes nothing), tenure points are keyed by member and month, and a tier change by the
state it was decided on. The operators' run (`POST /internal/v1/loyalty/jobs/run`) takes the
same lease as the scheduled job, so the two never run at once. Closed memberships (a number
that changed hands) are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mobi_contracts.events.loyalty import PointsExpired, PointsExpiredData, TierChanged, TierChangedData
from servicekit.mongo import Doc
from servicekit.schedule import LeasedJob
from servicekit.vntime import month_of, month_start

from .domain.rules import tier_for
from .domain.wallet import Wallet, due_months, earn, expire_month, set_tier
from .ledger import Decision
from .metrics import JOB_CHANGES, TRANSFERS_RECOVERED
from .programme import Programme, _common, event_id
from .store import LEDGER, WALLETS

log = logging.getLogger(__name__)


@dataclass
class JobReport:
    expired: int = 0
    tenure: int = 0
    tiers: int = 0


class ProgrammeJobs:
    def __init__(self, programme: Programme) -> None:
        self.programme = programme
        self.store = programme.store
        self.ledger = programme.ledger

    async def run(self, now: datetime) -> JobReport:
        report = JobReport()
        cursor = self.store[WALLETS].find({}, {"_id": 1, "since": 1})
        async for doc in cursor:
            await self._member(doc, now, report)
        for kind in ("expired", "tenure", "tiers"):
            JOB_CHANGES.labels(kind).inc(getattr(report, kind))
        log.info("loyalty job ran", extra={"now": now.isoformat(), **vars(report)})
        return report

    async def _member(self, doc: Doc, now: datetime, report: JobReport) -> None:
        msisdn = doc["_id"]
        wallet = await self.ledger.wallet(msisdn)
        if wallet is None or wallet.closed:
            return
        for month in due_months(wallet, now):
            key = f"expire:{msisdn}:{month}"
            _, fresh = await self.ledger.append(msisdn, key, self._expiring(key, month, now))
            report.expired += fresh
        points = self.programme.earning.for_tenure(doc.get("since"), now)
        if points > 0:
            key = f"earn:tenure:{msisdn}:{month_of(now)}"
            _, fresh = await self.ledger.append(msisdn, key, lambda w: self._tenure(w, key, points, now))
            report.tenure += fresh
        wallet = await self.ledger.wallet(msisdn)
        if wallet is not None and tier_for(wallet.qualifying(now)) != wallet.tier:
            key = f"tier:{msisdn}:{wallet.seq}"
            _, fresh = await self.ledger.append(msisdn, key, lambda w: self._tier(w, key, now))
            report.tiers += fresh

    def _expiring(self, key: str, month: str, now: datetime) -> Callable[[Wallet], Decision]:
        return lambda wallet: self._expiry(wallet, key, month, now)

    def _expiry(self, wallet: Wallet, key: str, month: str, now: datetime) -> Decision:
        change = expire_month(wallet, month, now)
        if change is None:  # decided again on a newer state where the month holds nothing
            return Decision("expire", set_tier(wallet, wallet.tier), {"points": 0, "months": [month]})
        event = PointsExpired.new(
            **_common(wallet.msisdn, f"job:{key}", None),
            event_id=event_id(key, "expired"),
            data=PointsExpiredData(
                entry_id=key,
                points=-change.delta,
                expired_on=month_start(month),
                balance_after=change.state.points,
            ),
        )
        return Decision("expire", change, {"months": [month]}, [event])

    def _tenure(self, wallet: Wallet, key: str, points: int, now: datetime) -> Decision:
        change = earn(wallet, points, now, self.programme.earning.valid_months, counts_for_tier=False)
        common = _common(wallet.msisdn, f"job:{key}", None)
        event = self.programme._earned_event(
            key, "tenure", month_of(now), points, change.state, change.buckets, now, common
        )
        return Decision("earn", change, {"source": "tenure", "cause_id": month_of(now)}, [event])

    def _tier(self, wallet: Wallet, key: str, now: datetime) -> Decision:
        qualifying = wallet.qualifying(now)
        tier = tier_for(qualifying)
        change = set_tier(wallet, tier)
        event = TierChanged.new(
            **_common(wallet.msisdn, f"job:{key}", None),
            event_id=event_id(key, "tier"),
            data=TierChangedData(
                from_tier=wallet.tier, to_tier=tier, qualifying_points=qualifying, changed_at=now
            ),
        )
        return Decision(
            "tier", change, {"from": wallet.tier, "to": tier}, [event] if tier != wallet.tier else []
        )

    # -- recovery ------------------------------------------------------------------------------

    async def recover(
        self, older_than: timedelta = timedelta(seconds=10), now: datetime | None = None
    ) -> int:
        """Credit the recipients of transfers whose credit a crash skipped."""
        cutoff = (now or datetime.now(UTC)) - older_than
        pending = await self.store[LEDGER].find({"counterpart_pending": True}).limit(200).to_list()
        done = 0
        for doc in pending:
            if doc["at"] > cutoff:
                continue
            log.warning("completing a transfer", extra={"entry": doc["_id"]})
            await self.programme.complete_transfer(doc)
            TRANSFERS_RECOVERED.inc()
            done += 1
        return done


class Schedules:
    """The periodic loops, each in one replica at a time (a Redis lease)."""

    def __init__(
        self,
        jobs: ProgrammeJobs,
        redis: Any,
        every: float,
        recover_every: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_prefix: str = "loyalty",
    ) -> None:
        self.jobs = jobs
        self.clock = clock
        self.daily = LeasedJob(
            redis, f"{lease_prefix}:programme-job", every=every, lease_seconds=max(600, int(every))
        )
        self.recovery = LeasedJob(redis, f"{lease_prefix}:recovery", every=recover_every)

    async def run_programme(self) -> None:
        await self.daily.run_forever(lambda: self.jobs.run(self.clock()))

    async def run_now(self, now: datetime) -> JobReport | None:
        """One run as of `now` (operators, tests) under the scheduled job's lease: None when
        a run holds it."""
        return await self.daily.run_once(lambda: self.jobs.run(now))

    async def run_recovery(self) -> None:
        await self.recovery.run_forever(self.jobs.recover)
