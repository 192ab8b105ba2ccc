"""A subscription's life, derived from what was recorded (nothing is ever rewritten).

Records: the subscription (what was requested), its consent entries (activated, cancelled,
charged, failed, skipped, ...), its charge claims (one per period) and its next schedule entry.
Its status follows from them:

- pending: waiting for in-app consent until `confirm_by`; expired after it;
- active: activated, not cancelled, and its last charge was paid (or is on its way);
- suspended: its last charge was refused (balance or monthly cap); the next period tries again;
- ended: a period that does not renew (a pack without auto-renew, a loyalty gift) is over;
- cancelled: no charge after the cancellation.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["pending", "expired", "active", "suspended", "ended", "cancelled"]
EXTERNAL_CHANNELS = ("sms", "partner_web")
_EVENT_NAMESPACE = uuid.UUID("0c9a5e2e-7f3b-4a51-9d6e-2b8f1c4d7a90")
ChargeState = Literal["requested", "skipped", "cancelled", "cap_reached", "free", "void"]


def subscription_id_for(*parts: str) -> str:
    """A stable id from what identifies the request (a retry makes the same subscription)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:10]
    return "sub-" + base64.b32encode(digest).decode().rstrip("=")


def charge_id(subscription_id: str, period: int) -> str:
    return f"{subscription_id}:{period}"


def event_id_for(*parts: str) -> uuid.UUID:
    """Events are named by the decision they announce: published twice, they are one event."""
    return uuid.uuid5(_EVENT_NAMESPACE, ":".join(parts))


def period_bounds(started_at: datetime, period_days: int, period: int) -> tuple[datetime, datetime]:
    start = started_at + timedelta(days=period_days * period)
    return start, start + timedelta(days=period_days)


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y%m")


@dataclass(frozen=True)
class View:
    status: Status
    started_at: datetime | None
    next_renewal_at: datetime | None
    current_period_end: datetime | None
    spent_this_month_vnd: int
    reason: str = ""


def derive(
    sub: dict[str, Any],
    consents: Iterable[dict[str, Any]],
    charges: Iterable[dict[str, Any]],
    next_entry: dict[str, Any] | None,
    now: datetime,
) -> View:
    by_action: dict[str, dict[str, Any]] = {}
    results: dict[str, str] = {}  # charge id -> charged | failed
    for entry in consents:
        by_action.setdefault(entry["action"], entry)
        if entry["action"] in ("charged", "charge_failed") and entry.get("charge_id"):
            current = results.get(entry["charge_id"])
            if current != "charged":  # a paid charge stays paid
                results[entry["charge_id"]] = "charged" if entry["action"] == "charged" else "failed"
    month = month_of(now)
    claims = sorted(charges, key=lambda c: c["period"])
    spent = sum(
        c["amount_vnd"]
        for c in claims
        if c["state"] == "requested" and c.get("month") == month and results.get(c["_id"]) == "charged"
    )
    spent -= sum(e.get("amount_vnd", 0) for e in by_action.values() if e["action"] == "refunded")
    activated = by_action.get("activated")
    started = activated["at"] if activated else None
    if "cancelled" in by_action:
        return View("cancelled", started, None, None, spent, by_action["cancelled"].get("reason", ""))
    if activated is None:
        # No consent needed (a purchase in the app): pending only until it is activated.
        waiting = sub.get("confirm_by") is None or now < sub["confirm_by"]
        status: Status = "pending" if waiting else "expired"
        return View(status, None, None, None, spent)
    paid = [c for c in claims if c["state"] in ("requested", "free", "skipped")]
    last = claims[-1] if claims else None
    period_end = max((c["period_end"] for c in paid), default=None)
    renews = next_entry is not None and sub.get("auto_renew", True)
    if last is not None and (
        last["state"] == "cap_reached"
        or (last["state"] == "requested" and results.get(last["_id"]) == "failed")
    ):
        reason = "monthly_cap_reached" if last["state"] == "cap_reached" else "charge_failed"
        return View(
            "suspended", started, next_entry["due_at"] if next_entry else None, period_end, spent, reason
        )
    if not renews and period_end is not None and now >= period_end:
        return View("ended", started, None, period_end, spent)
    return View("active", started, next_entry["due_at"] if renews and next_entry else None, period_end, spent)


def refund_due(sub: dict[str, Any], activated_at: datetime | None, now: datetime, window: timedelta) -> bool:
    """A subscription started outside the app and cancelled within the window: give back its first charge."""
    return sub["channel"] in EXTERNAL_CHANNELS and activated_at is not None and now - activated_at <= window


def may_start_outside_app(guard: dict[str, Any] | None, provider: str) -> bool:
    """Without a guard (or with it off) a content provider's request starts at once, as on
    today's networks; with it on, only allow-listed providers may."""
    if not guard or not guard.get("block_external"):
        return True
    return provider in guard.get("allowed_providers", [])


def within_cap(guard: dict[str, Any] | None, spent_vnd: int, amount_vnd: int) -> bool:
    cap = (guard or {}).get("monthly_cap_vnd")
    return cap is None or spent_vnd + amount_vnd <= cap
