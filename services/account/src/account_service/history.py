"""The history rows the app shows for a ledger decision (top-ups, charges), projected from the
cause event and the decision's entries: the same rows whether the decision is new or a replay
(refusals show nowhere)."""

from __future__ import annotations

from collections.abc import Sequence

from mobi_contracts import AnyEvent
from mobi_contracts.events.network import UsageRecorded
from mobi_contracts.events.payment import TopupRecorded
from mobi_contracts.events.vas import VasChargeRequested, VasChargeRequestedV2
from servicekit.mongo import Doc

from .store import CHARGES, TOPUPS


def history_rows(cause: AnyEvent, entries: Sequence[Doc]) -> dict[str, Doc]:
    """{collection: row} for a decision that changed balances; nothing for a refusal."""
    if not entries:
        return {}
    if isinstance(cause, TopupRecorded):
        return {TOPUPS: _topup_row(cause, entries)}
    if isinstance(cause, UsageRecorded):
        return {CHARGES: _usage_row(cause, entries)}
    if isinstance(cause, VasChargeRequested | VasChargeRequestedV2):
        return _vas_row(cause, entries)
    return {}


def _topup_row(cause: TopupRecorded, entries: Sequence[Doc]) -> Doc:
    d = cause.data
    return {
        "_id": d.topup_id,
        "msisdn": cause.subject,
        "amount_vnd": d.amount_vnd,
        "method": d.method,
        "payer_msisdn": d.payer_msisdn,
        "payment_id": d.payment_id,
        "balance_after": entries[-1]["balance_after"],
        "at": d.recorded_at,
    }


def _usage_row(cause: UsageRecorded, entries: Sequence[Doc]) -> Doc:
    u = cause.data
    return {
        "_id": u.usage_id,
        "msisdn": cause.subject,
        "kind": u.kind,
        "quantity": u.quantity,
        "unit": u.unit,
        "amount_vnd": sum(abs(e["delta"]) for e in entries if e["unit"] == "vnd"),
        "data_kb": -sum(e["delta"] for e in entries if e["unit"] == "kb"),
        "counterpart": u.counterpart,
        "description": entries[0]["description"],
        "at": u.started_at,
    }


def _vas_row(cause: VasChargeRequested | VasChargeRequestedV2, entries: Sequence[Doc]) -> dict[str, Doc]:
    v = cause.data
    money = [e for e in entries if e["unit"] == "vnd" and e["delta"]]
    if not money:
        return {}  # a free pack or VAS: nothing to show among the charges
    row = {
        "_id": f"vas:{v.charge_id}",
        "msisdn": cause.subject,
        "kind": "vas",
        "quantity": 1,
        "unit": v.kind,
        "amount_vnd": abs(money[0]["delta"]),
        "data_kb": 0,
        "counterpart": v.code,
        "description": money[0]["description"],
        "at": v.requested_at,
    }
    return {CHARGES: row}
