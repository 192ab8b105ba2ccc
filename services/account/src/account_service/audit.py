"""The money invariants, proved on the stored data (`make ledger-check`, and a metric).

The account service runs the check over the last hours every `audit_interval_seconds`; the
command runs it over everything.

1. balances: the journal is the truth of a subscriber's balances. Its decisions run 1..max
   unbroken; the state after the last one equals the sum of the entries 1..max, account by
   account (main, promotions, data buckets, voice and SMS allowances, whatever created them:
   top-ups, usage, VAS charges and packs, loyalty rewards); no entry ever left an account
   below zero; and the balance snapshot equals the sums of the entries 1..its seq (a snapshot
   behind the journal is normal, one ahead of it is a finding);
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
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from servicekit.buckets import hours_between
from servicekit.logs import configure_logging
from servicekit.mongo import Doc, Store
from servicekit.schedule import LeasedJob

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


def _credits_main(final: Doc) -> bool:
    """A card top-up, or a bill paid twice whose second payment is credited as a top-up."""
    return final.get("kind") == "topup" or final.get("credited_as") == "topup"


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
    """`run()` proves the invariants over everything (the command); `run(recent=...)` over what
    changed lately (the periodic check): the balances of subscribers with decisions in the last
    hours, with their whole journals, and the payments settled in them. Documents are found by
    the hour they were made in, an equality the store serves from an index (FerretDB reads a
    whole collection for a time range)."""

    def __init__(self, accounts: Store, payments: Store, grace: timedelta = timedelta(minutes=2)) -> None:
        self.accounts = accounts
        self.payments = payments
        self.grace = grace

    async def run(self, now: datetime | None = None, recent: timedelta | None = None) -> Report:
        now = now or datetime.now(UTC)
        if recent is None:
            # Snapshots before the journal: every decision up to a snapshot's seq is then read
            # (the journal is written first).
            balances = await self.accounts[BALANCES].find({}).to_list()
            journal = await self.accounts[JOURNAL].find({}, LEAN).to_list()
            heads = await self._heads(journal)
            finals = await self.payments[PAYMENT_FINALS].find({}, {"evidence": 0}).to_list()
            uses = await self.payments[SCRATCH_USES].find({}).to_list()
            credited = journal
        else:
            journal, balances, finals, uses, credited = await self._recent(now - recent, now)
            heads = await self._heads(journal)
        report = Report()
        report.counted = {
            "balances": len(balances),
            "decisions": len(journal),
            "payments settled": len(finals),
        }
        report.findings["balances"] = check_balances(balances, journal, heads)
        report.findings["topups"] = check_topups(credited, finals, uses, now - self.grace)
        report.findings["events"] = check_events(finals, now - self.grace)
        return report

    async def _heads(self, journal: list[Doc]) -> list[Doc]:
        """Each subscriber's last decision of `journal`, with its state after (one by id each)."""
        found = await self.accounts.find_by_ids(JOURNAL, [d["_id"] for d in last_decisions(journal)])
        return [{k: v for k, v in doc.items() if k in HEAD} for doc in found.values()]

    async def _recent(
        self, since: datetime, now: datetime
    ) -> tuple[list[Doc], list[Doc], list[Doc], list[Doc], list[Doc]]:
        hours = hours_between(since, now)
        recent = await _by_hours(self.accounts, JOURNAL, "hour", hours)
        numbers = {d["msisdn"] for d in recent}
        balances = list((await self.accounts.find_by_ids(BALANCES, numbers)).values())  # first
        journal = [
            doc
            for docs in await self.accounts.bounded_all(
                self.accounts[JOURNAL].find({"msisdn": n}, LEAN).to_list() for n in numbers
            )
            for doc in docs
        ]
        finals = await _by_hours(self.payments, PAYMENT_FINALS, "settled_hour", hours)
        uses = await _by_hours(self.payments, SCRATCH_USES, "used_hour", hours)
        # The payments behind recent credits (settled before the window, credited in it).
        topups = [d for d in recent if d.get("kind") == "topup" and _from_payment_service(d)]
        wanted = [str(d["_id"]).removeprefix("topup:") for d in topups]
        cards = [w for w in wanted if w.startswith("PAY")]
        finals += (
            await self.payments.find_by_ids(PAYMENT_FINALS, cards + [c + ":paid-late" for c in cards])
        ).values()
        uses += (
            await self.payments.find_by_ids(SCRATCH_USES, [w[2:] for w in wanted if w.startswith("SC")])
        ).values()
        finals = list({f["_id"]: f for f in finals}.values())
        uses = list({u["_id"]: u for u in uses}.values())
        # The credits of recently settled payments (credited in the window or not at all).
        owed = [str(f.get("payment_id", f["_id"])) for f in finals] + [u["topup_id"] for u in uses]
        credited = list((await self.accounts.find_by_ids(JOURNAL, [f"topup:{o}" for o in owed])).values())
        credited = list({d["_id"]: d for d in [*credited, *topups]}.values())
        return journal, balances, finals, uses, credited


LEAN = {"state_after": 0, "views": 0, "events": 0}  # what the checks do not read
HEAD = ("_id", "msisdn", "seq", "state_after")  # what they read of a subscriber's last decision


async def _by_hours(store: Store, collection: str, field: str, hours: list[str]) -> list[Doc]:
    found = await store.bounded_all(store[collection].find({field: h}).to_list() for h in hours)
    return [doc for docs in found for doc in docs]


def last_decisions(journal: Iterable[Doc]) -> list[Doc]:
    last: dict[str, Doc] = {}
    for decision in journal:
        held = last.get(decision["msisdn"])
        if held is None or decision["seq"] > held["seq"]:
            last[decision["msisdn"]] = decision
    return list(last.values())


def check_balances(
    balances: Iterable[Doc], journal: Iterable[Doc], heads: Iterable[Doc] | None = None
) -> list[str]:
    """The journal as the truth: unbroken, never below zero, its last state (`heads`: each
    subscriber's last decision with `state_after`; by default the last of `journal`) its sums;
    and each snapshot (`balances`, read before the journal) the sums of the decisions up to
    its seq."""
    journal = list(journal)
    heads = last_decisions(journal) if heads is None else heads
    decisions: dict[str, list[Doc]] = defaultdict(list)
    found = []
    for decision in journal:
        decisions[decision["msisdn"]].append(decision)
        for entry in decision.get("entries", []):
            if entry.get("balance_after", 0) < 0:
                found.append(f"{decision['_id']}: took {entry['account']} to {entry['balance_after']}")
    for number, mine in decisions.items():
        seqs = sorted(d["seq"] for d in mine)
        if seqs != list(range(1, seqs[-1] + 1)):
            found.append(f"{number}: journal seqs {seqs[-5:]} do not run 1..{seqs[-1]}")
    for head in heads:
        upto = _sums_upto(decisions[head["msisdn"]], head["seq"])
        state = _accounts_of(head.get("state_after", {}))
        found += _differences(f"{head['msisdn']} state after seq {head['seq']}", state, upto)
    for doc in balances:
        number, seq = doc["_id"], int(doc.get("seq", 0))
        last = max((d["seq"] for d in decisions.get(number, [])), default=0)
        if seq > last:
            found.append(f"{number}: snapshot at seq {seq} is ahead of its journal (1..{last})")
            continue
        found += _differences(f"{number}", _accounts_of(doc), _sums_upto(decisions.get(number, []), seq))
    return found


def _sums_upto(decisions: Iterable[Doc], seq: int) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for decision in decisions:
        if decision["seq"] <= seq:
            for entry in decision.get("entries", []):
                sums[entry["account"]] += entry["delta"]
    return sums


def _differences(what: str, held: dict[str, int], sums: dict[str, int]) -> list[str]:
    summed = {k: v for k, v in sums.items() if v or k in held}
    return [
        f"{what} {account}: balance {held.get(account, 0)} != journal sum {summed.get(account, 0)}"
        for account in sorted(set(held) | set(summed))
        if held.get(account, 0) != summed.get(account, 0)
    ]


def _accounts_of(doc: Doc) -> dict[str, int]:
    held = {"main": int(doc.get("main", 0)), "unbilled": int(doc.get("unbilled", 0))}
    held |= {f"promo:{p['id']}": int(p["balance"]) for p in doc.get("promos", [])}
    held |= {f"data:{d['id']}": int(d["remaining_kb"]) for d in doc.get("data", [])}
    held |= {f"{a['kind']}:{a['id']}": int(a["remaining"]) for a in doc.get("allowances", [])}
    return {k: v for k, v in held.items() if v or k in ("main",)}


def check_topups(
    journal: Iterable[Doc], finals: list[Doc], uses: list[Doc], settled_before: datetime
) -> list[str]:
    credited = {d["_id"].removeprefix("topup:"): d for d in journal if d.get("kind") == "topup"}
    owed: dict[str, tuple[str, int, datetime]] = {}  # topup id -> (target, amount, when)
    for final in finals:
        if final["status"] == "succeeded" and _credits_main(final):
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
        kind = "topup" if _credits_main(final) else final.get("kind", "")
        expected = EVENTS_FOR.get((final["status"], kind), {"PaymentFailed"})
        if not expected <= kinds:
            found.append(f"payment {final['_id']} ({final['status']}) lacks {sorted(expected - kinds)}")
        since = final.get("outbox_since")
        if final.get("outbox_pending") and since is not None and since < settled_before:
            found.append(f"payment {final['_id']}: events not relayed since {since.isoformat()}")
    return found


class AuditSchedule:
    """Runs the audit of recent changes every `interval` in one replica at a time and exports
    its result."""

    def __init__(
        self, audit: LedgerAudit, redis: Redis, interval: float, recent: timedelta = timedelta(hours=2)
    ) -> None:
        self.audit = audit
        self.recent = recent
        self.job = LeasedJob(redis, "account:ledger-check", every=interval)

    async def run_forever(self) -> None:
        await self.job.run_forever(self.run_once)

    async def run_once(self) -> Report:
        report = await self.audit.run(recent=self.recent)
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
