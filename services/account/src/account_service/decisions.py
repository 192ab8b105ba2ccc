"""What the ledger decides about each event (no I/O): the business key that makes it unique,
the rule that decides it (domain.balances, domain.grants, domain.tenancy), and the journal
document that records the decision (announcements derives its events from it, history its rows)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import PointsRedeemed
from mobi_contracts.events.network import UsageRecorded
from mobi_contracts.events.payment import TopupRecorded
from mobi_contracts.events.vas import (
    PlanChanged,
    VasChargeRequested,
    VasChargeRequestedV2,
    VasRefundRequested,
)
from mobi_contracts.topics import TENANCY_ENDED_EVENTS
from servicekit.buckets import hour_of
from servicekit.mongo import Doc

from .announcements import PRODUCER
from .domain.balances import Balances, Change, Outcome, apply_usage, credit_main, to_document
from .domain.grants import (
    Grant,
    change_plan,
    charge_vas,
    grant_airtime,
    grant_data,
    new_allowance,
    new_bucket,
    refund_vas,
)
from .domain.tenancy import end_tenancy

TOPUP_LABELS = {
    "card_international": "Top-up by international card",
    "card_domestic": "Top-up by domestic card",
    "scratch_card": "Top-up by scratch card",
}


# The events that are decisions on balances, and the journal `kind` each is recorded as.
DECIDED: dict[type[AnyEvent], str] = {
    TopupRecorded: "topup",
    UsageRecorded: "usage",
    VasChargeRequested: "vas_charge",
    VasChargeRequestedV2: "vas_charge",
    VasRefundRequested: "vas_refund",
    PlanChanged: "plan_change",
    PointsRedeemed: "redemption",
    **dict.fromkeys(TENANCY_ENDED_EVENTS, "tenancy_end"),
}
# Decisions that depend on the number being a live subscription (read from the registry).
NEEDS_REGISTRY = (VasChargeRequested, VasChargeRequestedV2, PointsRedeemed, PlanChanged)
VasCharge = VasChargeRequested | VasChargeRequestedV2


def idempotency_key(event: AnyEvent) -> str:
    """What makes an effect unique: the business id where there is one, else the event id."""
    if isinstance(event, TopupRecorded):
        return f"topup:{event.data.topup_id}"
    if isinstance(event, UsageRecorded):
        return f"usage:{event.data.usage_id}"
    if isinstance(event, VasChargeRequested | VasChargeRequestedV2):
        return f"vas:{event.data.charge_id}"
    if isinstance(event, VasRefundRequested):
        # One refund per charge, whatever the refund id (two ids for one charge credit once);
        # the VAS service's refund ids are `<charge id>:refund`, so older decisions keep their key.
        return f"vasrefund:{event.data.charge_id}:refund"
    if isinstance(event, PlanChanged):
        return f"plan:{event.data.change_id}"
    if isinstance(event, PointsRedeemed):
        return f"redemption:{event.data.redemption_id}"
    if isinstance(event, TENANCY_ENDED_EVENTS):
        return f"tenancy:{event.data.change_id}"
    return str(event.event_id)


def cause_at(event: AnyEvent) -> datetime:
    """When the cause of a decision happened (whose tenancy it belongs to: domain.tenancy)."""
    if isinstance(event, UsageRecorded):
        return event.data.started_at
    return event.occurred_at


def is_ledger_decision(event: AnyEvent) -> bool:
    """A redemption of a VAS is the VAS service's to grant: not ours, and not an error."""
    if isinstance(event, PointsRedeemed):
        return event.data.reward.granter == PRODUCER
    return type(event) in DECIDED


def outcome_of(
    event: AnyEvent,
    before: Balances,
    *,
    now: datetime,
    status: str | None,
    owner_since: datetime,
    charges: Mapping[str, Doc],
    kept: dict[str, int],
) -> tuple[Balances, Outcome]:
    """The rule for `event` applied to the state `before`: `status` and `owner_since` are the
    number's in the registry (read for decisions that need them), `charges` the journaled VAS
    charges being refunded, `kept` what a tenancy's end leaves (domain.tenancy)."""
    if isinstance(event, TopupRecorded):
        label = TOPUP_LABELS.get(event.data.method, "Top-up")
        state, outcome = credit_main(before, event.data.amount_vnd, "topup", label)
    elif isinstance(event, UsageRecorded):
        d = event.data
        state, outcome = apply_usage(
            before,
            kind=d.kind,
            quantity=d.quantity,
            charge_vnd=d.charge_vnd,
            now=now,
            description=f"{d.kind} {d.quantity} {d.unit}",
        )
    elif isinstance(event, VasChargeRequested | VasChargeRequestedV2):
        v = event.data
        state, outcome = charge_vas(
            before,
            status=status,
            amount=v.amount_vnd,
            grants=_grants(event),
            description=v.description or f"{v.code} ({v.kind})",
            previous_owner=v.subscribed_at is not None and v.subscribed_at < owner_since,
        )
    elif isinstance(event, VasRefundRequested):
        state, outcome = _refund(before, charges.get(f"vas:{event.data.charge_id}"), event)
    elif isinstance(event, PlanChanged):
        state, outcome = change_plan(
            before, status=status, billing=event.data.billing, plan_code=event.data.new_plan_code
        )
    elif isinstance(event, PointsRedeemed):
        previous_owner = event.data.redeemed_at < owner_since
        state, outcome = _redeem(before, status, event, previous_owner)
    elif isinstance(event, TENANCY_ENDED_EVENTS):
        state, outcome = end_tenancy(before, kept, _ended_because(event))
    else:  # pragma: no cover - filtered by apply()
        raise ValueError(f"no balance rule for {event.event_type}")
    return state, outcome


def journal_document(cause: AnyEvent, outcome: Outcome, after: Balances, now: datetime) -> Doc:
    """The decision: its claim (key, msisdn and seq), entries, refusal and the state after
    it; the events it implies are derived from it (announcements), the history rows from
    it and its cause (history)."""
    key = idempotency_key(cause)
    return {
        "_id": key,
        "msisdn": after.msisdn,
        "seq": after.seq,
        "at": now,
        "hour": hour_of(now),  # the audit finds recent decisions by it
        "kind": DECIDED[type(cause)],
        "cause_event_id": str(cause.event_id),
        "cause_event_type": cause.event_type,
        "cause_at": cause_at(cause),  # whose tenancy the decision belongs to (domain.tenancy)
        "correlation_id": cause.correlation_id,
        "entries": [_entry(key, c) for c in outcome.changes],
        "refused": vars(refused) if (refused := outcome.refusal or outcome.declined) else None,
        "state_after": to_document(after),
    }


def _entry(key: str, change: Change) -> Doc:
    return {
        "entry_id": change.entry_id(key),
        "account": change.account,
        "unit": change.unit,
        "delta": change.delta,
        "balance_after": change.balance_after,
        "reason": change.reason,
        "description": change.description,
    }


def _grants(event: VasCharge) -> list[Grant]:
    """What a pack charge gives: v1 carries one data bucket, v2 a list of grants."""
    if isinstance(event, VasChargeRequested):
        pack = event.data.data_bucket
        return [new_bucket(pack.bucket_id, pack.name, pack.quota_kb, pack.expires_at)] if pack else []
    grants: list[Grant] = []
    for g in event.data.grants:
        if g.kind == "data":
            grants.append(new_bucket(g.grant_id, g.name, g.quantity, g.expires_at))
        else:
            grants.append(new_allowance(g.grant_id, g.kind, g.name, g.quantity, g.expires_at))
    return grants


def _refund(before: Balances, charge: Doc | None, event: VasRefundRequested) -> tuple[Balances, Outcome]:
    """A refund of a charge this subscriber was never charged is a data error (a dead letter
    for an operator to look at), never a credit."""
    d = event.data
    if charge is None:
        raise ValueError(f"refund {d.refund_id}: {event.subject} was never charged {d.charge_id}")
    entries = charge.get("entries", [])
    return refund_vas(
        before,
        amount=d.amount_vnd,
        charged_main=-sum(e["delta"] for e in entries if e["account"] == "main"),
        charged_unbilled=sum(e["delta"] for e in entries if e["account"] == "unbilled"),
        description=d.description or f"Refund of {d.charge_id}",
    )


def _ended_because(event: AnyEvent) -> str:
    return {
        "SubscriberOwnerChanged": "Number passed to a new owner: previous owner's balance closed",
        "SubscriberTerminated": "Subscription terminated: balance closed",
        "SubscriberPortedOut": "Number ported to another operator: balance closed",
    }.get(event.event_type, "Tenancy ended: balance closed")


def _redeem(
    before: Balances, status: str | None, event: PointsRedeemed, previous_owner: bool
) -> tuple[Balances, Outcome]:
    d = event.data
    reward = d.reward
    if reward.kind == "airtime" and reward.amount_vnd:
        return grant_airtime(
            before,
            status=status,
            amount=reward.amount_vnd,
            description=f"Loyalty reward {reward.catalog_code}: {reward.amount_vnd:,} VND airtime",
            previous_owner=previous_owner,
        )
    if reward.kind == "data" and reward.data_kb and reward.validity_days:
        gb = reward.data_kb / 1024**2
        size = f"{gb:g} GB" if gb >= 1 else f"{reward.data_kb // 1024} MB"
        return grant_data(
            before,
            status=status,
            redemption_id=d.redemption_id,
            name=f"Loyalty {reward.catalog_code}",
            quota_kb=reward.data_kb,
            redeemed_at=d.redeemed_at,
            validity_days=reward.validity_days,
            description=f"Loyalty reward {reward.catalog_code}: {size} data, {reward.validity_days} days",
            previous_owner=previous_owner,
        )
    # The contract's validator makes this unreachable; a data error (dead letter) if not.
    raise ValueError(f"redemption {d.redemption_id}: no rule for a {reward.kind} reward")
