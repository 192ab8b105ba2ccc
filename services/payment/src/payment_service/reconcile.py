"""Reconciliation (`payment-reconcile`): what the provider says against what we recorded.

1. Pending payments older than their window (expiry plus grace): ask the provider. Paid -> settle as
   succeeded (credit); refused -> failed; unknown or abandoned -> expired.
2. Succeeded top-ups the account service has not confirmed (no credit) after a while:
   publish their TopupRecorded again (same event id, so it is applied at most once).
3. Outbox entries not relayed: relay them.
Prints a report; exit status 1 when rows remain that none of the above explains.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import vnpay
from servicekit.kafka.publisher import EventPublisher
from servicekit.logs import configure_logging
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay

from .domain.rules import judge
from .payments import PaymentService
from .settings import PaymentSettings
from .store import CREDITS, FINALS, PAYMENTS, SCRATCH_USES

log = logging.getLogger(__name__)


@dataclass
class Report:
    settled_after_query: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    credits_resent: list[str] = field(default_factory=list)
    outbox_relayed: int = 0
    unexplained: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"pending payments settled from the provider's answer: {len(self.settled_after_query)}",
            f"stale pending payments expired: {len(self.expired)}",
            f"succeeded top-ups not yet credited, TopupRecorded sent again: {len(self.credits_resent)}",
            f"outbox entries relayed: {self.outbox_relayed}",
            f"unexplained: {len(self.unexplained)}",
            *(f"  {pid}: {why}" for pid, why in self.unexplained),
        ]


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
    ) -> None:
        self.service = service
        self.store = service.store
        self.publisher = publisher
        self.relays = relays
        self.pending_after = pending_after
        self.credit_wait = credit_wait
        self.give_up_after = give_up_after

    async def run(self, now: datetime | None = None) -> Report:
        now = now or datetime.now(UTC)
        report = Report()
        for relay in self.relays:
            report.outbox_relayed += await relay.sweep(older_than=timedelta(0))
        await self._settle_stale_pendings(now, report)
        await self._resend_uncredited(now, report)
        return report

    async def _settle_stale_pendings(self, now: datetime, report: Report) -> None:
        pending = await self.store[PAYMENTS].find({"status": "pending"}).to_list()
        for payment in pending:
            if await self.service.mirror(payment["_id"]):
                continue  # settled already, the mirror was behind
            if payment["created_at"] + self.pending_after > now:
                continue  # the customer may still be paying
            try:
                result = await self.service.provider.query(
                    txn_ref=payment["_id"],
                    created_at=payment["created_at"],
                    order_info=payment["order_info"],
                    now=now,
                )
            except vnpay.VnpayError as exc:
                report.unexplained.append((payment["_id"], f"provider query failed: {exc}"))
                continue
            await self._settle_from_query(payment, result, now, report)

    async def _settle_from_query(
        self, payment: dict[str, Any], result: Any, now: datetime, report: Report
    ) -> None:
        if result is None:
            await self.service.settle(payment, "expired", None, "11", now)
            report.expired.append(payment["_id"])
            return
        verdict = judge(payment["amount_vnd"], result)
        if verdict.action == "reject_amount":
            report.unexplained.append(
                (payment["_id"], f"provider amount {result.amount_vnd} != {payment['amount_vnd']}")
            )
        elif verdict.action == "wait":
            await self.service.settle(payment, "expired", None, "11", now)
            report.expired.append(payment["_id"])
        else:
            assert verdict.status is not None
            await self.service.settle(payment, verdict.status, result, verdict.reason_code, now)
            report.settled_after_query.append(payment["_id"])

    async def _resend_uncredited(self, now: datetime, report: Report) -> None:
        settled = await self.store[FINALS].find({"status": "succeeded", "kind": "topup"}).to_list()
        used = await self.store[SCRATCH_USES].find({}).to_list()
        due = [
            (doc, when)
            for doc, when in [(f, f["settled_at"]) for f in settled] + [(u, u["used_at"]) for u in used]
            if now - when >= self.credit_wait
        ]
        credited = await self.store.find_by_ids(CREDITS, (doc["topup_event_id"] for doc, _ in due))
        for doc, when in due:
            if doc["topup_event_id"] in credited:
                continue
            if now - when > self.give_up_after:
                report.unexplained.append((doc["_id"], "top-up still not credited after re-sending"))
                continue
            topups = [e for e in doc.get("events", []) if e["headers"].get("event-type") == "TopupRecorded"]
            await self.publisher.publish_serialized(topups)
            report.credits_resent.append(doc["_id"])


async def reconcile(settings: PaymentSettings, pending_after: timedelta, credit_wait: timedelta) -> Report:
    store = Store(settings.mongodb_url, settings.database_name, app_name="payment-reconcile")
    publisher = EventPublisher(settings.kafka_bootstrap, "payment-reconcile")
    await store.connect()
    await publisher.start()
    relays = [OutboxRelay(store, publisher, settings.service_name, c) for c in (FINALS, SCRATCH_USES)]
    service = PaymentService.from_settings(
        settings, store=store, relay=relays[0], service="payment-reconcile"
    )
    try:
        reconciler = Reconciler(
            service,
            publisher,
            relays,
            pending_after=pending_after,
            credit_wait=credit_wait,
            give_up_after=timedelta(hours=1),
        )
        return await reconciler.run()
    finally:
        await service.bills.close()
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
    parser.add_argument("--credit-wait-seconds", type=int, default=60, help="before a missing credit counts")
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
