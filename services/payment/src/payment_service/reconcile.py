"""Reconciliation: what the provider says against what we recorded.

1. Payments still open after their window (expiry plus grace): ask the provider.
   Paid -> settle as succeeded (credit). Not paid (unknown to the provider, or its window
   passed without a card) -> expired; a card refused -> failed. Still in progress at the
   provider -> left open and asked again on the next run: a payment is expired only when
   the provider says it is not paid. Open longer than `give_up_after` -> unexplained (alert).
2. Succeeded top-ups the account service has not confirmed (no landed mark) after a while:
   publish their TopupRecorded again (same event id, so it is applied at most once).
3. Outbox entries not relayed: relay them.

The payment service runs it every `reconcile_interval_seconds` (one replica at a time, by a
lease in Redis) and exports the result as metrics; `payment-reconcile` runs it once for an
operator over the whole `lookback`, prints a report and exits 1 when rows remain that none
of the above explains.

A run costs what happened since the last one, not the history: the service keeps in Redis
how far it has looked (`ReconcileState`) and the few payments it must look at again (still in
progress at the provider, credits re-sent); payments and top-ups are found by the hours and
minutes they were created or settled in (equalities the store serves from an index; FerretDB
filters a time range by reading the whole collection).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Gauge
from redis.asyncio import Redis

import vnpay
from servicekit.buckets import buckets_between
from servicekit.kafka.publisher import EventPublisher
from servicekit.logs import configure_logging
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay
from servicekit.schedule import LeasedJob

from .domain.rules import judge
from .payments import PaymentService
from .settings import PaymentSettings
from .store import CREDITS, FINALS, PAYMENTS, SCRATCH_USES

log = logging.getLogger(__name__)

RECONCILE_FOUND = Gauge(
    "payment_reconcile_last_run",
    "What the last reconciliation run found, by kind (unexplained > 0 needs a person)",
    ["service", "kind"],
)


@dataclass
class Report:
    settled_after_query: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    credits_resent: list[str] = field(default_factory=list)
    outbox_relayed: int = 0
    unexplained: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"pending payments settled from the provider's answer: {len(self.settled_after_query)}",
            f"stale pending payments expired (the provider says not paid): {len(self.expired)}",
            f"pending payments still in progress at the provider (asked again later): "
            f"{len(self.in_progress)}",
            f"succeeded top-ups not yet credited, TopupRecorded sent again: {len(self.credits_resent)}",
            f"outbox entries relayed: {self.outbox_relayed}",
            f"unexplained: {len(self.unexplained)}",
            *(f"  {pid}: {why}" for pid, why in self.unexplained),
        ]

    def export(self, service: str) -> None:
        for kind, count in (
            ("settled_after_query", len(self.settled_after_query)),
            ("expired", len(self.expired)),
            ("in_progress", len(self.in_progress)),
            ("credits_resent", len(self.credits_resent)),
            ("outbox_relayed", self.outbox_relayed),
            ("unexplained", len(self.unexplained)),
        ):
            RECONCILE_FOUND.labels(service, kind).set(count)


@dataclass
class ReconcileState:
    """How far reconciliation has looked, and what it must look at again."""

    created_until: datetime | None = None  # payments created before this were looked at
    settled_until: datetime | None = None  # top-ups settled before this were checked for a credit
    open_payments: set[str] = field(default_factory=set)  # still in progress at the provider
    awaiting_credit: set[str] = field(default_factory=set)  # "<collection>/<id>": re-sent

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "created_until": self.created_until,
                "settled_until": self.settled_until,
                "open_payments": sorted(self.open_payments),
                "awaiting_credit": sorted(self.awaiting_credit),
            }
        )

    @classmethod
    def loads(cls, raw: bytes | None) -> ReconcileState:
        if not raw:
            return cls()
        doc = orjson.loads(raw)
        when = {
            k: datetime.fromisoformat(doc[k]) if doc.get(k) else None
            for k in ("created_until", "settled_until")
        }
        return cls(
            **when, open_payments=set(doc["open_payments"]), awaiting_credit=set(doc["awaiting_credit"])
        )


class Reconciler:
    def __init__(
        self,
        service: PaymentService,
        publisher: EventPublisher,
        relays: list[OutboxRelay],
        *,
        pending_after: timedelta,
        credit_wait: timedelta,
        give_up_after: timedelta,
        lookback: timedelta = timedelta(hours=48),
    ) -> None:
        self.service = service
        self.store = service.store
        self.publisher = publisher
        self.relays = relays
        self.pending_after = pending_after
        self.credit_wait = credit_wait
        self.give_up_after = give_up_after
        self.lookback = lookback

    async def run(self, now: datetime | None = None, state: ReconcileState | None = None) -> Report:
        """One pass; `state` (updated in place) makes it start where the last pass stopped."""
        now = now or datetime.now(UTC)
        state = state if state is not None else ReconcileState()
        report = Report()
        for relay in self.relays:
            report.outbox_relayed += await relay.sweep(older_than=timedelta(0))
        await self._settle_stale_pendings(now, state, report)
        await self._resend_uncredited(now, state, report)
        return report

    async def _between(self, collection: str, prefix: str, start: datetime, end: datetime) -> list[Doc]:
        """Documents whose `<prefix>_at` is in [start, end), found by their hour and minute."""
        if end <= start:
            return []
        hours, minutes = buckets_between(start, end)
        col = self.store[collection]
        found = await asyncio.gather(
            *(col.find({f"{prefix}_hour": h}).to_list() for h in hours),
            *(col.find({f"{prefix}_minute": m}).to_list() for m in minutes),
        )
        return [doc for docs in found for doc in docs if start <= doc[f"{prefix}_at"] < end]

    async def _settle_stale_pendings(self, now: datetime, state: ReconcileState, report: Report) -> None:
        start, end = state.created_until or now - self.lookback, now - self.pending_after
        candidates = await self._between(PAYMENTS, "created", start, end)
        again = await self.store.find_by_ids(PAYMENTS, state.open_payments)
        candidates += [p for p in again.values() if p["_id"] not in {c["_id"] for c in candidates}]
        settled = await self.store.find_by_ids(FINALS, (p["_id"] for p in candidates))
        state.open_payments = set()
        for payment in candidates:
            if payment["_id"] in settled:
                continue
            try:
                result = await self.service.provider.query(
                    txn_ref=payment["_id"],
                    created_at=payment["created_at"],
                    order_info=payment["order_info"],
                    now=now,
                )
            except vnpay.VnpayError as exc:
                report.unexplained.append((payment["_id"], f"provider query failed: {exc}"))
                state.open_payments.add(payment["_id"])
                continue
            if not await self._settle_from_query(payment, result, now, report):
                state.open_payments.add(payment["_id"])
        state.created_until = max(end, start)

    async def _settle_from_query(self, payment: Doc, result: Any, now: datetime, report: Report) -> bool:
        """True when the payment is settled now (or cannot be by us: a dispute)."""
        if result is None:  # the provider never saw it: the customer never reached the payment page
            await self.service.settle(payment, "expired", None, "11", now)
            report.expired.append(payment["_id"])
            return True
        verdict = judge(payment["amount_vnd"], result)
        if verdict.action == "reject_amount":
            report.unexplained.append(
                (payment["_id"], f"provider amount {result.amount_vnd} != {payment['amount_vnd']}")
            )
            return False
        if verdict.action == "wait":  # in progress at the provider: never expire a maybe-paid payment
            report.in_progress.append(payment["_id"])
            if now - payment["expires_at"] > self.give_up_after:
                report.unexplained.append((payment["_id"], "still in progress at the provider"))
            return False
        if verdict.status == "failed" and result.transaction_no in (None, "", "0"):
            # Not paid, and no card was even tried: the payment window passed.
            await self.service.settle(payment, "expired", result, "11", now)
            report.expired.append(payment["_id"])
            return True
        assert verdict.status is not None
        await self.service.settle(payment, verdict.status, result, verdict.reason_code, now)
        report.settled_after_query.append(payment["_id"])
        return True

    async def _resend_uncredited(self, now: datetime, state: ReconcileState, report: Report) -> None:
        start, end = state.settled_until or now - self.lookback, now - self.credit_wait
        settled = await self._between(FINALS, "settled", start, end)
        used = await self._between(SCRATCH_USES, "used", start, end)
        due = {f"{FINALS}/{f['_id']}": (f, f["settled_at"]) for f in settled if _succeeded_topup(f)}
        due |= {f"{SCRATCH_USES}/{u['_id']}": (u, u["used_at"]) for u in used}
        due |= await self._awaiting(state.awaiting_credit - set(due))
        credited = await self.store.find_by_ids(CREDITS, (doc["topup_event_id"] for doc, _ in due.values()))
        state.awaiting_credit = set()
        for key, (doc, when) in due.items():
            if doc["topup_event_id"] in credited:
                continue
            if now - when > self.give_up_after:
                report.unexplained.append((doc["_id"], "top-up still not credited after re-sending"))
            else:
                topups = [
                    e for e in doc.get("events", []) if e["headers"].get("event-type") == "TopupRecorded"
                ]
                await self.publisher.publish_serialized(topups)
                report.credits_resent.append(doc["_id"])
            state.awaiting_credit.add(key)
        state.settled_until = max(end, start)

    async def _awaiting(self, keys: Iterable[str]) -> dict[str, tuple[Doc, datetime]]:
        by_collection: dict[str, list[str]] = {FINALS: [], SCRATCH_USES: []}
        for key in keys:
            collection, _, doc_id = key.partition("/")
            by_collection.setdefault(collection, []).append(doc_id)
        out: dict[str, tuple[Doc, datetime]] = {}
        for collection, ids in by_collection.items():
            time_field = "settled_at" if collection == FINALS else "used_at"
            for doc_id, doc in (await self.store.find_by_ids(collection, ids)).items():
                out[f"{collection}/{doc_id}"] = (doc, doc[time_field])
        return out


def _succeeded_topup(final: Doc) -> bool:
    credits_main = final.get("kind") == "topup" or final.get("credited_as") == "topup"  # a bill paid twice
    return bool(final["status"] == "succeeded" and credits_main)


def reconciler_for(
    settings: PaymentSettings,
    service: PaymentService,
    publisher: EventPublisher,
    relays: list[OutboxRelay],
    *,
    pending_after: timedelta | None = None,
    credit_wait: timedelta | None = None,
) -> Reconciler:
    return Reconciler(
        service,
        publisher,
        relays,
        pending_after=timedelta(seconds=settings.payment_ttl_minutes * 60 + 120)
        if pending_after is None
        else pending_after,
        credit_wait=timedelta(seconds=settings.reconcile_credit_wait_seconds)
        if credit_wait is None
        else credit_wait,
        give_up_after=timedelta(seconds=settings.reconcile_give_up_seconds),
        lookback=timedelta(hours=settings.reconcile_lookback_hours),
    )


class ReconcileSchedule:
    """Runs reconciliation every `interval` in one replica at a time (a lease in Redis), each
    run starting where the last one stopped (its state, in Redis)."""

    STATE = "payment:reconcile:state"

    def __init__(self, reconciler: Reconciler, redis: Redis, interval: float, service: str) -> None:
        self.reconciler = reconciler
        self.redis = redis
        self.service = service
        self.job = LeasedJob(redis, "payment:reconcile", every=interval)

    async def run_forever(self) -> None:
        await self.job.run_forever(self.run_once)

    async def run_once(self) -> Report:
        raw = await self.redis.get(self.STATE)
        state = ReconcileState.loads(raw if isinstance(raw, bytes) else None)
        report = await self.reconciler.run(state=state)
        await self.redis.set(self.STATE, state.dumps())
        report.export(self.service)
        if report.unexplained:
            log.error("reconciliation found unexplained payments", extra={"rows": report.lines()})
        return report


async def reconcile(settings: PaymentSettings, pending_after: timedelta, credit_wait: timedelta) -> Report:
    store = Store(settings.mongodb_url, settings.database_name, app_name="payment-reconcile")
    publisher = EventPublisher(settings.kafka_access, "payment-reconcile")
    await store.connect()
    await publisher.start()
    relays = [OutboxRelay(store, publisher, settings.service_name, c) for c in (FINALS, SCRATCH_USES)]
    service = PaymentService.from_settings(
        settings, store=store, relay=relays[0], service="payment-reconcile"
    )
    try:
        reconciler = reconciler_for(
            settings, service, publisher, relays, pending_after=pending_after, credit_wait=credit_wait
        )
        return await reconciler.run()
    finally:
        await service.accounts.close()
        await publisher.stop()
        await store.close()


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    settings = PaymentSettings()
    window = settings.payment_ttl_minutes * 60 + 120
    parser.add_argument(
        "--pending-after-seconds",
        type=int,
        default=window,
        help=f"ask the provider about payments pending longer than this (default {window}: expiry + 2 min)",
    )
    parser.add_argument(
        "--credit-wait-seconds",
        type=int,
        default=settings.reconcile_credit_wait_seconds,
        help="before a missing credit counts",
    )
    args = parser.parse_args()
    configure_logging("payment-reconcile", "WARNING")
    report = asyncio.run(
        reconcile(
            settings,
            timedelta(seconds=args.pending_after_seconds),
            timedelta(seconds=args.credit_wait_seconds),
        )
    )
    print("\n".join(report.lines()))
    sys.exit(1 if report.unexplained else 0)
