"""A subscription's life, derived from what was recorded (nothing is ever rewritten).

Every period of a subscription is a *slot* `<subscription>:<period>` in `charges`, decided once
by a unique insert: charged (`requested`), given (`free`), `skipped`, refused by the monthly
cap (`cap_reached`), or a *stopper* (`cancelled`, `renewal_off`) that ends the chain. The next
period gets its schedule entry only when the slot before it is decided and does not stop the
chain, so a stopper in the first free slot ends every further charge, whatever runs at the same
time: a renewal, a skip or an activation that comes later finds its slot taken.

A subscription's status follows from its facts (activated, cancelled), its newest slots and
their outcomes, and its next schedule entry, all read by subscription:

- pending: waiting for in-app consent (or for its activation) until `confirm_by`; expired after;
- active: activated, not cancelled, and its last charge was paid (or is on its way);
- suspended: its last charge was refused (balance or monthly cap); the next period tries again;
- ended: a period that does not renew (a pack without auto-renew, a loyalty gift) is over;
- cancelled: no charge after the cancellation.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from servicekit.vntime import month_of

Doc = dict[str, Any]
Status = Literal["pending", "expired", "active", "suspended", "ended", "cancelled"]
RUNNING: tuple[Status, ...] = ("pending", "active", "suspended")
EXTERNAL_CHANNELS = ("sms", "partner_web")
_EVENT_NAMESPACE = uuid.UUID("0c9a5e2e-7f3b-4a51-9d6e-2b8f1c4d7a90")
ChargeState = Literal["requested", "skipped", "cancelled", "renewal_off", "cap_reached", "free", "void"]
# Slots that use their period's time (the next period follows them) and slots that end the chain.
CONSUMING = ("requested", "free", "skipped", "cap_reached", "void")
STOPPERS = ("cancelled", "renewal_off")
__all__ = ["month_of"]


def subscription_id_for(*parts: str) -> str:
    """A stable id from what identifies the request (a retry makes the same subscription)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:10]
    return "sub-" + base64.b32encode(digest).decode().rstrip("=")


def charge_id(subscription_id: str, period: int) -> str:
    return f"{subscription_id}:{period}"


def event_id_for(*parts: str) -> uuid.UUID:
    """Events are named by the decision they announce: published twice, they are one event."""
    return uuid.uuid5(_EVENT_NAMESPACE, ":".join(parts))


def period_bounds(origin: datetime, period_days: int, period: int) -> tuple[datetime, datetime]:
    start = origin + timedelta(days=period_days * period)
    return start, start + timedelta(days=period_days)


# -- the chain ---------------------------------------------------------------------------------


def next_period(slots: Sequence[Doc]) -> int:
    """The first slot nobody decided yet."""
    return max((int(s["period"]) for s in slots), default=-1) + 1


def origin_of(slot: Doc, period_days: int) -> datetime:
    """The origin of the template that decided a slot (slots written before they kept it: from
    their window)."""
    if slot.get("origin") is not None:
        found: datetime = slot["origin"]
        return found
    start: datetime = slot["period_start"]
    return start - timedelta(days=period_days * int(slot["period"]))


def next_origin(last: Doc | None, activated_origin: datetime, period_days: int) -> datetime:
    """The origin (`started_at`) of the template that decides the slot after `last`.

    A slot's window is `origin + period * days`. After a consuming slot the next window follows
    it (same origin); a `renewal_off` stopper left its window unused, so the slot after it (when
    auto-renew is turned on again) takes that window: the origin moves one period back."""
    if last is None:
        return activated_origin
    origin = origin_of(last, period_days)
    if last["state"] == "renewal_off":
        return origin - timedelta(days=period_days)
    return origin


def continues(slot: Doc) -> bool:
    """Does the period after this slot get scheduled (when the subscription renews)?"""
    return slot["state"] in ("requested", "skipped", "cap_reached")


# -- the view ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """What one subscription's view is derived from, read by subscription (never by a window
    over the subscriber's log): its facts, its newest slots (newest first), this month's slots,
    their outcomes (charge id -> charged | failed), refunds this month, its next entry."""

    sub: Doc
    activated: Doc | None = None
    cancelled: Doc | None = None
    refused: Doc | None = None
    slots: Sequence[Doc] = ()
    month_slots: Sequence[Doc] = ()
    outcomes: Mapping[str, str] = field(default_factory=dict)
    refunded_vnd: int = 0
    next_entry: Doc | None = None


@dataclass(frozen=True)
class View:
    status: Status
    started_at: datetime | None
    next_renewal_at: datetime | None
    current_period_end: datetime | None
    spent_this_month_vnd: int
    reason: str = ""
    auto_renew: bool = False


def spent(records: Records, now: datetime) -> int:
    month = month_of(now)
    paid = sum(
        int(s["amount_vnd"])
        for s in records.month_slots
        if s["state"] == "requested"
        and s.get("month") == month
        and records.outcomes.get(s["_id"]) == "charged"
    )
    return paid - records.refunded_vnd


def derive(records: Records, now: datetime) -> View:
    sub = records.sub
    cost = spent(records, now)
    started = records.activated["at"] if records.activated else None
    if records.cancelled is not None:
        reason = str(records.cancelled.get("reason", ""))
        return View("cancelled", started, None, None, cost, reason)
    if records.activated is None and records.refused is not None:
        return View("expired", None, None, None, cost, str(records.refused.get("reason", "")))
    if records.activated is None:
        waiting = sub.get("confirm_by") is None or now < sub["confirm_by"]
        return View("pending" if waiting else "expired", None, None, None, cost)
    last = records.slots[0] if records.slots else None
    wants_renewal = bool(sub.get("auto_renew", True))
    if last is None:  # activated: its first charge is on its way
        return View("active", started, None, None, cost, auto_renew=wants_renewal)
    if last["state"] == "cancelled":  # a cancellation whose record is still being written
        return View("cancelled", started, None, None, cost, "subscriber")
    renews = records.next_entry is not None and wants_renewal
    auto_renew = wants_renewal and (last["state"] != "renewal_off" or records.next_entry is not None)
    period_end = max(
        (
            s["period_end"]
            for s in records.slots
            if s["state"] in ("free", "skipped")
            or (s["state"] == "requested" and records.outcomes.get(s["_id"]) != "void")
        ),
        default=None,
    )
    next_at = records.next_entry["due_at"] if renews and records.next_entry else None
    if last["state"] == "cap_reached":
        return View("suspended", started, next_at, period_end, cost, "monthly_cap_reached", auto_renew)
    if last["state"] == "requested" and records.outcomes.get(last["_id"]) == "failed":
        return View("suspended", started, next_at, period_end, cost, "charge_failed", auto_renew)
    if not renews and period_end is not None and now >= period_end:
        return View("ended", started, None, period_end, cost, auto_renew=auto_renew)
    return View("active", started, next_at, period_end, cost, auto_renew=auto_renew)


# -- rules ---------------------------------------------------------------------------------------


def refund_due(sub: Doc, activated_at: datetime | None, now: datetime, window: timedelta) -> bool:
    """A subscription started outside the app and cancelled within the window: give back its first charge."""
    return sub["channel"] in EXTERNAL_CHANNELS and activated_at is not None and now - activated_at <= window


def may_start_outside_app(guard: Doc | None, provider: str) -> bool:
    """Without a guard (or with it off) a content provider's request starts at once, as on
    today's networks; with it on, only allow-listed providers may."""
    if not guard or not guard.get("block_external"):
        return True
    return provider in guard.get("allowed_providers", [])


def within_cap(cap_vnd: int | None, spent_vnd: int, amount_vnd: int) -> bool:
    return cap_vnd is None or spent_vnd + amount_vnd <= cap_vnd


def may_skip(entry: Doc, now: datetime, lead: timedelta) -> bool:
    """Only the renewal that is coming (within the notice lead) can be skipped: one skip per
    period, never a run of future periods decided in advance."""
    return bool(entry["due_at"] - lead <= now < entry["due_at"])
