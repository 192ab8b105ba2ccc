"""A subscriber's balances and how events change them.

Money is whole đồng (VND). Prepaid usage is paid from promotional accounts first (the
soonest to expire first), then the main account; a debit never takes an account below
zero: if the subscriber cannot pay all of it, nothing is taken and the debit is refused.
Data usage is taken from data buckets (soonest to expire first). Postpaid usage is not
debited: it accrues to the unbilled amount that the next bill will carry.

`seq` counts the decisions applied to a subscriber's balances: decision N+1 is always taken
on the state after decision N, and the journal keeps each decision under a unique
(subscriber, seq), so two writers can never both extend the same state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

Plan = Literal["prepaid", "postpaid"]
AllowanceKind = Literal["voice", "sms"]
Unit = Literal["vnd", "kb", "seconds", "messages"]
ALLOWANCE_UNITS: dict[str, Unit] = {"voice": "seconds", "sms": "messages"}
# Units a BalanceChanged (v1) can announce; allowance entries are journaled, not announced.
ANNOUNCED_UNITS = ("vnd", "kb")


@dataclass(frozen=True)
class PromoAccount:
    id: str
    name: str
    balance: int
    expires_at: datetime


@dataclass(frozen=True)
class DataBucket:
    id: str
    name: str
    remaining_kb: int
    total_kb: int
    expires_at: datetime


@dataclass(frozen=True)
class Allowance:
    """Voice seconds or SMS messages a pack gave, drained by usage before money."""

    id: str
    kind: AllowanceKind
    name: str
    remaining: int
    total: int
    expires_at: datetime


@dataclass(frozen=True)
class Change:
    """One ledger entry."""

    account: str  # main | promo:<id> | data:<id> | voice:<id> | sms:<id> | unbilled
    unit: Unit
    delta: int
    balance_after: int
    reason: str
    description: str

    def entry_id(self, cause_event_id: str) -> str:
        return fit(f"{cause_event_id}:{self.account}", ENTRY_ID_MAX)


ENTRY_ID_MAX = 160  # BalanceChangedData.entry_id
ACCOUNT_MAX = 64  # BalanceChangedData.account


def fit(text: str, limit: int) -> str:
    """`text`, or when longer than `limit` a prefix of it and a digest of the whole (stable, so
    a replay names the same entry). Ids come from other services' events (a 64-character
    bucket id, a 96-character charge id) and must still fit the ledger's event fields."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[: limit - len(digest) - 1]}~{digest}"


@dataclass(frozen=True)
class Refusal:
    account: str
    requested: int
    available: int
    reason: Literal["insufficient_funds", "no_such_account"] = "insufficient_funds"


@dataclass(frozen=True)
class Declined:
    """A grant refused for a reason other than money (see domain.grants)."""

    reason: Literal["no_such_subscriber", "not_eligible"]
    detail: str


@dataclass(frozen=True)
class Outcome:
    changes: tuple[Change, ...] = ()
    refusal: Refusal | None = None
    declined: Declined | None = None


@dataclass(frozen=True)
class Balances:
    msisdn: str
    plan: Plan = "prepaid"  # billing: how debits are paid (see debit_money)
    main: int = 0
    unbilled: int = 0
    promos: tuple[PromoAccount, ...] = ()
    data: tuple[DataBucket, ...] = ()
    allowances: tuple[Allowance, ...] = ()
    seq: int = 0  # decisions applied so far (see the module docstring)
    plan_code: str | None = None  # the tariff plan (PlanChanged); None until one is recorded

    def next_decision(self) -> Balances:
        return replace(self, seq=self.seq + 1)

    def live_promos(self, now: datetime) -> list[PromoAccount]:
        return sorted(
            (p for p in self.promos if p.expires_at > now and p.balance > 0), key=lambda p: p.expires_at
        )

    def live_data(self, now: datetime) -> list[DataBucket]:
        return sorted(
            (d for d in self.data if d.expires_at > now and d.remaining_kb > 0), key=lambda d: d.expires_at
        )

    def live_allowances(self, kind: AllowanceKind, now: datetime) -> list[Allowance]:
        return sorted(
            (a for a in self.allowances if a.kind == kind and a.expires_at > now and a.remaining > 0),
            key=lambda a: a.expires_at,
        )

    def spendable(self, now: datetime) -> int:
        return self.main + sum(p.balance for p in self.live_promos(now))


def credit_main(b: Balances, amount: int, reason: str, description: str) -> tuple[Balances, Outcome]:
    if amount <= 0:
        raise ValueError(f"credit must be positive, got {amount}")
    after = b.main + amount
    change = Change("main", "vnd", amount, after, reason, description)
    return replace(b, main=after), Outcome(changes=(change,))


def debit_money(
    b: Balances, amount: int, now: datetime, reason: str, description: str
) -> tuple[Balances, Outcome]:
    """Take `amount` from promotional accounts, then main; all of it or nothing."""
    if amount < 0:
        raise ValueError(f"debit must not be negative, got {amount}")
    if amount == 0:
        return b, Outcome()
    if b.plan == "postpaid":
        after = b.unbilled + amount
        return replace(b, unbilled=after), Outcome(
            changes=(Change("unbilled", "vnd", amount, after, reason, description),)
        )
    available = b.spendable(now)
    if available < amount:
        return b, Outcome(refusal=Refusal("main", amount, available))
    remaining, changes, promos = amount, [], {p.id: p for p in b.promos}
    for promo in b.live_promos(now):
        take = min(promo.balance, remaining)
        if take:
            promos[promo.id] = replace(promo, balance=promo.balance - take)
            changes.append(
                Change(f"promo:{promo.id}", "vnd", -take, promo.balance - take, reason, description)
            )
            remaining -= take
        if not remaining:
            break
    main = b.main
    if remaining:
        main -= remaining
        changes.append(Change("main", "vnd", -remaining, main, reason, description))
    return replace(b, main=main, promos=tuple(promos.values())), Outcome(changes=tuple(changes))


def use_data(b: Balances, kilobytes: int, now: datetime, description: str) -> tuple[Balances, Outcome]:
    """Take data from buckets, soonest to expire first; what no bucket covers is not taken
    here (the charging system rates it as money in the same usage record)."""
    remaining, changes, buckets = kilobytes, [], {d.id: d for d in b.data}
    for bucket in b.live_data(now):
        take = min(bucket.remaining_kb, remaining)
        if take:
            left = bucket.remaining_kb - take
            buckets[bucket.id] = replace(bucket, remaining_kb=left)
            changes.append(Change(f"data:{bucket.id}", "kb", -take, left, "usage", description))
            remaining -= take
        if not remaining:
            break
    return replace(b, data=tuple(buckets.values())), Outcome(changes=tuple(changes))


def use_allowance(
    b: Balances, kind: AllowanceKind, quantity: int, now: datetime, description: str
) -> tuple[Balances, Outcome]:
    """Take call seconds or messages from a pack's allowances, soonest to expire first; what no
    allowance covers is not taken here (the charging system rates it as money in the same
    usage record, as for data)."""
    remaining, changes, held = quantity, [], {a.id: a for a in b.allowances if a.kind == kind}
    for allowance in b.live_allowances(kind, now):
        take = min(allowance.remaining, remaining)
        if take:
            left = allowance.remaining - take
            held[allowance.id] = replace(allowance, remaining=left)
            unit = ALLOWANCE_UNITS[kind]
            changes.append(Change(f"{kind}:{allowance.id}", unit, -take, left, "usage", description))
            remaining -= take
        if not remaining:
            break
    others = tuple(a for a in b.allowances if a.kind != kind)
    return replace(b, allowances=(*others, *held.values())), Outcome(changes=tuple(changes))


def apply_usage(
    b: Balances, *, kind: str, quantity: int, charge_vnd: int, now: datetime, description: str
) -> tuple[Balances, Outcome]:
    """A rated usage record: data from buckets (calls and SMS from a pack's allowances), then the
    money charge (all or nothing)."""
    if kind == "data" and quantity:
        after_data, data_outcome = use_data(b, quantity, now, description)
    elif kind in ("voice", "sms") and quantity:
        after_data, data_outcome = use_allowance(
            b, "voice" if kind == "voice" else "sms", quantity, now, description
        )
    else:
        after_data, data_outcome = b, Outcome()
    after_money, money_outcome = debit_money(after_data, charge_vnd, now, "usage", description)
    if money_outcome.refusal:
        return b, money_outcome  # refused: not even the data is taken
    return after_money, Outcome(changes=data_outcome.changes + money_outcome.changes)


# -- persistence shape (kept here so the mapping is tested with the rules) -------------------


def to_document(b: Balances) -> dict[str, Any]:
    return {
        "plan": b.plan,
        "plan_code": b.plan_code,
        "main": b.main,
        "unbilled": b.unbilled,
        "promos": [vars(p) for p in b.promos],
        "data": [vars(d) for d in b.data],
        "allowances": [vars(a) for a in b.allowances],
        "seq": b.seq,
    }


def from_document(doc: dict[str, Any]) -> Balances:
    return Balances(
        msisdn=doc["_id"],
        plan=doc.get("plan", "prepaid"),
        plan_code=doc.get("plan_code"),
        main=int(doc.get("main", 0)),
        unbilled=int(doc.get("unbilled", 0)),
        promos=tuple(PromoAccount(**p) for p in doc.get("promos", [])),
        data=tuple(DataBucket(**d) for d in doc.get("data", [])),
        allowances=tuple(Allowance(**a) for a in doc.get("allowances", [])),
        seq=int(doc.get("seq", 0)),
    )
