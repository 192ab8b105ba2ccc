"""The documents a subscription's chain is made of (no I/O): its template, its slot claims and
its schedule entries.

- A *template* is what a charge needs of its subscription (code, price, period, what a pack
  grants) and the chain's `started_at` (its origin: slot `p` covers `origin + p * days`).
- A *slot* claims one period (`_id` = `<subscription>:<period>` = the charge id the account
  service debits once), in one of the states of `domain.subscriptions.ChargeState`.
- A *schedule entry* names the next slot to decide and when (found by the minute it falls due).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mobi_contracts.events.vas import ChargeKind
from servicekit.buckets import hour_of, minute_of
from servicekit.vntime import month_of

from .subscriptions import ChargeState, Doc, charge_id, event_id_for, period_bounds

GRANT_NAMES = {"data": "", "voice": " (thoại)", "sms": " (SMS)"}


def template(sub: Doc, origin: datetime) -> Doc:
    """What a charge of this subscription needs (schedule entries carry it)."""
    return {
        "subscription_id": sub["_id"],
        "msisdn": sub["msisdn"],
        "code": sub["code"],
        "name": sub["name"],
        "item_kind": sub["item_kind"],
        "price_vnd": sub["price_vnd"],
        "period_days": sub["period_days"],
        "grants": grant_specs(sub),
        "auto_renew": sub.get("auto_renew", True),
        "started_at": origin,
        # When the subscriber agreed: the account refuses a charge of a previous owner's
        # subscription (a recycled number inherits nothing).
        "subscribed_at": sub.get("requested_at"),
    }


def grant_specs(doc: Doc) -> list[Doc]:
    """What one period of a pack gives ({kind, quantity}); records written before packs had
    several grants carry a data quota only."""
    if doc.get("grants") is not None:
        return list(doc["grants"])
    return [{"kind": "data", "quantity": doc["quota_kb"]}] if doc.get("quota_kb") else []


def charge_kind(tmpl: Doc, period: int) -> ChargeKind:
    if grant_specs(tmpl):
        return "data_pack" if period == 0 else "data_pack_renewal"
    return "vas_first" if period == 0 else "vas_renewal"


def grants_for(tmpl: Doc, cid: str, expires_at: datetime) -> list[Doc]:
    """The allowances a charge creates (PackGrant, as JSON), named by the charge."""
    grant_id = f"{tmpl['code']}-{cid}".replace(":", "-")[:64]
    return [
        {
            "grant_id": grant_id,
            "kind": spec["kind"],
            "name": (tmpl["name"][:90] + GRANT_NAMES.get(spec["kind"], ""))[:100],
            "quantity": int(spec["quantity"]),
            "expires_at": expires_at.isoformat(),
        }
        for spec in grant_specs(tmpl)
    ]


def slot_claim(
    tmpl: Doc,
    period: int,
    now: datetime,
    correlation_id: str,
    state: ChargeState = "requested",
    batch: str | None = None,
) -> Doc:
    """The claim of one (subscription, period); a `requested` one is a charge to ask for."""
    sub = tmpl["subscription_id"]
    cid = charge_id(sub, period)
    start, end = period_bounds(tmpl["started_at"], tmpl["period_days"], period)
    claim: Doc = {
        "_id": cid,
        "msisdn": tmpl["msisdn"],
        "subscription_id": sub,
        "code": tmpl["code"],
        "period": period,
        "kind": charge_kind(tmpl, period),
        "state": state,
        "amount_vnd": tmpl["price_vnd"],
        "origin": tmpl["started_at"],
        "period_start": start,
        "period_end": end,
        "auto_renew": tmpl.get("auto_renew", True),
        "grants": grants_for(tmpl, cid, end),
        "description": f"{tmpl['code']}: {tmpl['name']}"[:200],
        "month": month_of(now),
        "at": now,
        "hour": hour_of(now),
    }
    if tmpl.get("subscribed_at") is not None:
        claim["subscribed_at"] = tmpl["subscribed_at"]
    if batch is not None:
        claim["batch"] = batch
    if state == "requested":
        claim["correlation_id"] = correlation_id or cid
        claim["event_id"] = str(event_id_for(cid, "requested"))
    return claim


def schedule_entry(tmpl: Doc, period: int, notice_lead: timedelta) -> Doc:
    due, _ = period_bounds(tmpl["started_at"], tmpl["period_days"], period)
    notice = due - min(notice_lead, timedelta(days=tmpl["period_days"]) / 2)
    return {
        "_id": charge_id(tmpl["subscription_id"], period),
        "subscription_id": tmpl["subscription_id"],
        "msisdn": tmpl["msisdn"],
        "period": period,
        "due_at": due,
        "due_minute": minute_of(due),
        "notice_at": notice,
        "notice_minute": minute_of(notice),
        "template": tmpl,
    }
