"""What other services ask the ledger for: VAS fees and data packs, tariff plan changes (the
VAS service) and loyalty rewards (the loyalty service). Each is one decision on a subscriber's
balances, journaled like a top-up or a usage record (see ledger.py).

VAS fees are paid from the main account only, never from promotional accounts: the contract
(`mobi_contracts.events.vas`) charges "the main balance", and promotional credit is the
operator's gift for calls, SMS and data under its campaign's terms, not money to buy content
services with; a renewal quietly eating it is exactly the unwanted VAS charge the product
protects subscribers from. Postpaid fees accrue to the unbilled amount, like usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from .balances import (
    ACCOUNT_MAX,
    ALLOWANCE_UNITS,
    Allowance,
    AllowanceKind,
    Balances,
    Change,
    DataBucket,
    Declined,
    Outcome,
    Plan,
    Refusal,
    credit_main,
    fit,
)

# A number the operator still serves can be charged (a suspended line keeps its services and
# their renewals); a terminated or ported-out one, or one not ours, cannot.
CHARGEABLE = frozenset({"active", "suspended"})
BUCKET_ID_MAX = ACCOUNT_MAX - len("data:")  # its ledger account is data:<id>


def new_bucket(bucket_id: str, name: str, quota_kb: int, expires_at: datetime) -> DataBucket:
    return DataBucket(fit(bucket_id, BUCKET_ID_MAX), name, quota_kb, quota_kb, expires_at)


def add_bucket(b: Balances, bucket: DataBucket, reason: str, description: str) -> tuple[Balances, Change]:
    """A new data bucket (usage then takes data from it, soonest to expire first). Ids are unique
    per purchase; one that exists anyway is topped up, so its balance stays its journal sum.
    Drained buckets are dropped on the way: they show nowhere and their entries sum to zero."""
    existing = next((d for d in b.data if d.id == bucket.id), None)
    if existing is not None:
        bucket = replace(
            existing,
            remaining_kb=existing.remaining_kb + bucket.total_kb,
            total_kb=existing.total_kb + bucket.total_kb,
            expires_at=max(existing.expires_at, bucket.expires_at),
        )
    added = bucket.total_kb - (existing.total_kb if existing else 0)
    kept = tuple(d for d in b.data if d.id != bucket.id and d.remaining_kb > 0)
    change = Change(f"data:{bucket.id}", "kb", added, bucket.remaining_kb, reason, description)
    return replace(b, data=(*kept, bucket)), change


def new_allowance(
    allowance_id: str, kind: AllowanceKind, name: str, quantity: int, expires_at: datetime
) -> Allowance:
    return Allowance(fit(allowance_id, BUCKET_ID_MAX), kind, name, quantity, quantity, expires_at)


def add_allowance(
    b: Balances, allowance: Allowance, reason: str, description: str
) -> tuple[Balances, Change]:
    """Voice seconds or SMS from a pack (usage takes from them, soonest to expire first). Ids are
    unique per purchase; one that exists anyway is topped up, as a data bucket is."""
    existing = next((a for a in b.allowances if a.id == allowance.id and a.kind == allowance.kind), None)
    if existing is not None:
        allowance = replace(
            existing,
            remaining=existing.remaining + allowance.total,
            total=existing.total + allowance.total,
            expires_at=max(existing.expires_at, allowance.expires_at),
        )
    added = allowance.total - (existing.total if existing else 0)
    kept = tuple(
        a for a in b.allowances if not (a.id == allowance.id and a.kind == allowance.kind) and a.remaining > 0
    )
    unit = ALLOWANCE_UNITS[allowance.kind]
    change = Change(f"{allowance.kind}:{allowance.id}", unit, added, allowance.remaining, reason, description)
    return replace(b, allowances=(*kept, allowance)), change


Grant = DataBucket | Allowance


def charge_vas(
    b: Balances,
    *,
    status: str | None,
    amount: int,
    grants: Sequence[Grant],
    description: str,
    previous_owner: bool = False,
) -> tuple[Balances, Outcome]:
    """A VAS or pack fee: all of it from main or nothing (prepaid), or accrued (postpaid); what
    the pack gives (data buckets, voice and SMS allowances) comes with the fee in the same
    decision. A free pack (amount 0) with a data bucket is only its bucket; any other free
    charge still answers with a zero money entry, so the VAS service hears back (allowance
    entries are journaled but not announced: BalanceChanged v1 carries money and data).
    A subscription a previous owner of the number agreed to is never charged to this one."""
    if status not in CHARGEABLE or previous_owner:
        return b, Outcome(refusal=Refusal("main", amount, 0, "no_such_account"))
    changes: list[Change] = []
    after = b
    if amount or not any(isinstance(g, DataBucket) for g in grants):
        if b.plan == "postpaid":
            after = replace(b, unbilled=b.unbilled + amount)
            changes.append(Change("unbilled", "vnd", amount, after.unbilled, "vas_charge", description))
        elif amount > b.main:
            return b, Outcome(refusal=Refusal("main", amount, b.main))
        else:
            after = replace(b, main=b.main - amount)
            changes.append(Change("main", "vnd", -amount, after.main, "vas_charge", description))
    for grant in grants:
        if isinstance(grant, DataBucket):
            after, change = add_bucket(after, grant, "vas_charge", description)
        else:
            after, change = add_allowance(after, grant, "vas_charge", description)
        changes.append(change)
    return after, Outcome(changes=tuple(changes))


def change_plan(
    b: Balances, *, status: str | None, billing: Plan, plan_code: str
) -> tuple[Balances, Outcome]:
    """The tariff plan and its billing; later debits follow the new billing. Only for a live
    subscription in the registry: a change for a number that is not ours, or no longer served,
    is recorded as declined and changes nothing."""
    if status not in CHARGEABLE:
        detail = (
            "the number is not a MobiFone subscriber" if status is None else f"the subscription is {status}"
        )
        return b, Outcome(
            declined=Declined("no_such_subscriber" if status is None else "not_eligible", detail)
        )
    return replace(b, plan=billing, plan_code=plan_code), Outcome()


def grant_airtime(
    b: Balances, *, status: str | None, amount: int, description: str, previous_owner: bool = False
) -> tuple[Balances, Outcome]:
    if (declined := _not_grantable(status, previous_owner)) is not None:
        return b, Outcome(declined=declined)
    return credit_main(b, amount, "loyalty_redemption", description)


def grant_data(
    b: Balances,
    *,
    status: str | None,
    redemption_id: str,
    name: str,
    quota_kb: int,
    redeemed_at: datetime,
    validity_days: int,
    description: str,
    previous_owner: bool = False,
) -> tuple[Balances, Outcome]:
    if (declined := _not_grantable(status, previous_owner)) is not None:
        return b, Outcome(declined=declined)
    expires_at = redeemed_at + timedelta(days=validity_days)
    bucket = new_bucket(f"loyalty:{redemption_id}", name, quota_kb, expires_at)
    after, change = add_bucket(b, bucket, "loyalty_redemption", description)
    return after, Outcome(changes=(change,))


def _not_grantable(status: str | None, previous_owner: bool = False) -> Declined | None:
    """Rewards go to active subscribers only, and a reward a previous owner of the number
    redeemed to nobody (their points closed with their membership); a refusal makes loyalty
    give the points back."""
    if status is None:
        return Declined("no_such_subscriber", "the number is not a MobiFone subscriber")
    if status != "active":
        return Declined("not_eligible", f"the subscription is {status}")
    if previous_owner:
        return Declined("not_eligible", "the number changed hands after the redemption")
    return None


def refund_vas(
    b: Balances, *, amount: int, charged_main: int, charged_unbilled: int, description: str
) -> tuple[Balances, Outcome]:
    """Give back (part of) a VAS charge, where it was paid from: an accrued fee comes off the
    unbilled amount (what the bill no longer holds goes to main), a debited one back to main.
    Never more than was charged: a refund is not a way to mint airtime."""
    if amount <= 0 or amount > charged_main + charged_unbilled:
        raise ValueError(f"a refund of {amount} for a charge of {charged_main + charged_unbilled}")
    off_bill = min(amount, charged_unbilled, b.unbilled)
    to_main = amount - off_bill
    after = replace(b, unbilled=b.unbilled - off_bill, main=b.main + to_main)
    changes = []
    if off_bill:
        changes.append(Change("unbilled", "vnd", -off_bill, after.unbilled, "vas_charge", description))
    if to_main:
        changes.append(Change("main", "vnd", to_main, after.main, "vas_charge", description))
    return after, Outcome(changes=tuple(changes))
