"""Balances are not inherited: when a number changes hands (or its subscription ends), what the
ended tenancy left in its accounts goes, in one journal decision (no I/O here).

Kafka orders one subscriber's events within a topic, not across topics: the new owner's first
top-up (payment.events.v1) may be decided before the `SubscriberOwnerChanged` that ends the
previous tenancy (subscriber.lifecycle.v1). So the decision does not simply zero everything:
it keeps, account by account, what decisions of the new tenancy already put there (`kept`:
the entries of decisions whose cause happened at or after the tenancy's boundary), never
more than an account holds, and takes the rest. Decisions on causes from before the boundary
(a late usage record, a renewal) are the previous tenancy's and go with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from .balances import Balances, Change, Outcome

REASON = "adjustment"


def kept_by_tenancy(decisions: Iterable[Mapping[str, Any]], boundary: datetime) -> dict[str, int]:
    """Per ledger account, the sum of the entries of journal decisions whose cause happened at or
    after `boundary` (decisions that do not say when their cause happened are older ones)."""
    kept: dict[str, int] = defaultdict(int)
    for decision in decisions:
        cause_at = decision.get("cause_at")
        if not isinstance(cause_at, datetime):
            continue
        if (cause_at if cause_at.tzinfo else cause_at.replace(tzinfo=UTC)) < boundary:
            continue
        for entry in decision.get("entries", []):
            kept[entry["account"]] += int(entry["delta"])
    return dict(kept)


def end_tenancy(b: Balances, kept: Mapping[str, int], description: str) -> tuple[Balances, Outcome]:
    """Every account down to what the new tenancy put there (`kept`, within 0..held); emptied
    promotional accounts and data buckets are dropped (they show nowhere, their entries sum to 0)."""
    changes: list[Change] = []

    def settle(account: str, unit: Literal["vnd", "kb"], held: int) -> int:
        left = max(0, min(held, kept.get(account, 0)))
        if left != held:
            changes.append(Change(account, unit, left - held, left, REASON, description))
        return left

    main = settle("main", "vnd", b.main)
    unbilled = settle("unbilled", "vnd", b.unbilled)
    promos = []
    for promo in b.promos:
        left = settle(f"promo:{promo.id}", "vnd", promo.balance)
        if left > 0:
            promos.append(replace(promo, balance=left))
    data = []
    for bucket in b.data:
        left = settle(f"data:{bucket.id}", "kb", bucket.remaining_kb)
        if left > 0:
            data.append(replace(bucket, remaining_kb=left))
    after = replace(b, main=main, unbilled=unbilled, promos=tuple(promos), data=tuple(data))
    return after, Outcome(changes=tuple(changes))
