"""The money invariants, proved on the stored data (`make ledger-check`, and a metric).

1. balances: every balance equals the sum of its journal entries, account by account, and
   its journal is an unbroken run of decisions 1..seq;
2. topups: every top-up the payment service settled as succeeded (card or scratch card) is
   credited exactly once: one journal decision for its key, crediting its amount to the
   target's main account; and nothing is credited that the payment service did not settle;
3. events: no settled payment lacks its events (a success carries PaymentSucceeded and its
   TopupRecorded/BillPaid, a failure PaymentFailed), and none waits long to be relayed.

Top-ups settled within `grace` are still on their way and are not judged yet. The check
reads the payment service's database (read-only): it audits the two services against
each other, which neither can do alone. The account service runs it every
`audit_interval_seconds` (one replica at a time) and exports
`ledger_check_violations{check}`; the `ledger-check` command prints the findings and exits
1 when there are any.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from servicekit.logs import configure_logging
from servicekit.mongo import Doc, Store

from .settings import AccountSettings
from .store import BALANCES, JOURNAL

# The payment service's collections (read-only here; see payment_service.store).
PAYMENT_FINALS = "payment_finals"
SCRATCH_USES = "scratch_card_uses"
EVENTS_FOR = {
    ("succeeded", "topup"): {"PaymentSucceeded", "TopupRecorded"},
    ("succeeded", "bill"): {"PaymentSucceeded", "BillPaid"},
}
CHECKS = ("balances", "topups", "events")

VIOLATIONS = Gauge("ledger_check_violations", "Money invariants broken at the last check", ["check"])
LAST_CHECK = Gauge(
    "ledger_check_last_success_timestamp_seconds", "When the money invariants were last proved"
)
CHECK_RUNS = Counter("ledger_check_runs_total", "Runs of the money invariant check", ["result"])


@dataclass
class Report:
    findings: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    counted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.findings.values())

    def lines(self) -> list[str]:
        out = [f"checked: {', '.join(f'{n} {what}' for what, n in self.counted.items())}"]
        for check in CHECKS:
            found = self.findings[check]
            out.append(f"{check}: {'ok' if not found else f'{len(found)} violation(s)'}")
            out.extend(f"  {line}" for line in found[:50])
        return out

    def export(self) -> None:
        for check in CHECKS:
            VIOLATIONS.labels(check).set(len(self.findings[check]))


class LedgerAudit:
    def __init__(self, accounts: Store, payments: Store, grace: timedelta = timedelta(minutes=2)) -> None:
        self.accounts = accounts
        self.payments = payments
        self.grace = grace

    async def run(self, now: datetime | None = None) -> Report:
        now = now or datetime.now(UTC)
        report = Report()
        journal = await self.accounts[JOURNAL].find({}, {"state_after": 0, "views": 0}).to_list()
        balances = await self.accounts[BALANCES].find({}).to_list()
        finals = await self.payments[PAYMENT_FINALS].find({}, {"evidence": 0}).to_list()
        uses = await self.payments[SCRATCH_USES].find({}).to_list()
        report.counted = {
            "balances": len(balances),
            "decisions": len(journal),
            "payments settled": len(finals),
        }
        report.findings["balances"] = check_balances(balances, journal)
        report.findings["topups"] = check_topups(journal, finals, uses, now - self.grace)
        report.findings["events"] = check_events(finals, now - self.grace)
        return report


def check_balances(balances: Iterable[Doc], journal: Iterable[Doc]) -> list[str]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seqs: dict[str, list[int]] = defaultdict(list)
    for decision in journal:
        seqs[decision["msisdn"]].append(decision["seq"])
        for entry in decision.get("entries", []):
            sums[decision["msisdn"]][entry["account"]] += entry["delta"]
    found = []
    for doc in balances:
        number = doc["_id"]
        held = _accounts_of(doc)
        summed = {k: v for k, v in sums.get(number, {}).items() if v or k in held}
        for account in sorted(set(held) | set(summed)):
            balance, total = held.get(account, 0), summed.get(account, 0)
            if balance != total:
                found.append(f"{number} {account}: balance {balance} != journal sum {total}")
        if sorted(seqs.get(number, [])) != list(range(1, int(doc.get("seq", 0)) + 1)):
            found.append(
                f"{number}: journal seqs {sorted(seqs.get(number, []))[-5:]} do not run 1..{doc.get('seq')}"
            )
    return found


def _accounts_of(doc: Doc) -> dict[str, int]:
    held = {"main": int(doc.get("main", 0)), "unbilled": int(doc.get("unbilled", 0))}
    held |= {f"promo:{p['id']}": int(p["balance"]) for p in doc.get("promos", [])}
    held |= {f"data:{d['id']}": int(d["remaining_kb"]) for d in doc.get("data", [])}
    return {k: v for k, v in held.items() if v or k in ("main",)}


def check_topups(
    journal: Iterable[Doc], finals: list[Doc], uses: list[Doc], settled_before: datetime
) -> list[str]:
    credited = {d["_id"].removeprefix("topup:"): d for d in journal if d.get("kind") == "topup"}
    owed: dict[str, tuple[str, int, datetime]] = {}  # topup id -> (target, amount, when)
    for final in finals:
        if final["status"] == "succeeded" and final.get("kind") == "topup":
            topup_id = str(final.get("payment_id", final["_id"]))
            owed[topup_id] = (
                final.get("target_msisdn") or final["msisdn"],
                final["amount_vnd"],
                final["settled_at"],
            )
    for use in uses:
        owed[use["topup_id"]] = (use["target_msisdn"], use["amount_vnd"], use["used_at"])
    found = []
    for topup_id, (target, amount, when) in owed.items():
        decision = credited.get(topup_id)
        if decision is None:
            if when < settled_before:
                found.append(f"top-up {topup_id} of {amount} for {target} succeeded but was never credited")
            continue
        main = sum(e["delta"] for e in decision.get("entries", []) if e["account"] == "main")
        if decision["msisdn"] != target or main != amount:
            found.append(
                f"top-up {topup_id}: credited {main} to {decision['msisdn']}, owed {amount} to {target}"
            )
    for topup_id, decision in credited.items():
        if topup_id not in owed and _from_payment_service(decision):
            found.append(f"top-up {topup_id} credited to {decision['msisdn']} with no succeeded payment")
    return found


def _from_payment_service(decision: Doc) -> bool:
    # Test and operator tools may publish TopupRecorded of their own; the audit covers the
    # payment service's (card payments "PAY…", scratch cards "SC…").
    topup_id = str(decision["_id"]).removeprefix("topup:")
    return topup_id.startswith(("PAY", "SC"))


def check_events(finals: Iterable[Doc], settled_before: datetime) -> list[str]:
    found = []
    for final in finals:
        kinds = {e.get("headers", {}).get("event-type") for e in final.get("events", [])}
        expected = EVENTS_FOR.get((final["status"], final.get("kind", "")), {"PaymentFailed"})
        if not expected <= kinds:
            found.append(f"payment {final['_id']} ({final['status']}) lacks {sorted(expected - kinds)}")
        since = final.get("outbox_since")
        if final.get("outbox_pending") and since is not None and since < settled_before:
            found.append(f"payment {final['_id']}: events not relayed since {since.isoformat()}")
    return found


class AuditSchedule:
    """Runs the audit every `interval` in one replica at a time and exports its result."""

    LEASE = "account:ledger-check:lease"

    def __init__(self, audit: LedgerAudit, redis: Redis, interval: float) -> None:
        self.audit = audit
        self.redis = redis
        self.interval = interval
        self.owner = secrets.token_hex(8)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.run_once()

    async def run_once(self) -> Report | None:
        try:
            if not await self.redis.set(self.LEASE, self.owner, nx=True, ex=max(60, int(self.interval))):
                return None
            report = await self.audit.run()
        except Exception:
            CHECK_RUNS.labels("failed").inc()
            return None
        report.export()
        CHECK_RUNS.labels("ok" if report.ok else "violations").inc()
        LAST_CHECK.set(datetime.now(UTC).timestamp())
        return report


async def _check(settings: AccountSettings, grace: timedelta) -> Report:
    accounts = Store(settings.mongodb_url, settings.database_name, app_name="ledger-check")
    payments = Store(settings.mongodb_url, settings.payment_database, app_name="ledger-check")
    await accounts.connect()
    await payments.connect()
    try:
        return await LedgerAudit(accounts, payments, grace).run()
    finally:
        await accounts.close()
        await payments.close()


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--grace-seconds", type=int, default=120, help="top-ups settled more recently are in flight"
    )
    args = parser.parse_args()
    configure_logging("ledger-check", "WARNING")
    report = asyncio.run(_check(AccountSettings(), timedelta(seconds=args.grace_seconds)))
    print("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)
