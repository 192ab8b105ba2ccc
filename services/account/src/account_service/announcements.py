"""The events a ledger decision implies (BalanceChanged, BalanceChangeRejected, the answer to a
loyalty redemption), derived from the journal document itself.

A decision's events are part of the decision: the document holds everything they say (its
entries, refusal, cause, correlation id and time), and their ids are derived from the decision's
key, so deriving them again (a replay, a redelivered batch) gives the same events with the same
ids, which consumers deduplicate. Older decisions stored their events serialized (`events`);
those are sent as stored. Deriving rather than storing keeps a decision's document to about a
third of the size, and the journal insert is most of what a decision costs (issue 19).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from mobi_contracts import AnyEvent, Topic, parse_event
from mobi_contracts.events.account import (
    BalanceChanged,
    BalanceChangedData,
    BalanceChangeRejected,
    BalanceChangeRejectedData,
)
from mobi_contracts.events.loyalty import (
    RedemptionGranted,
    RedemptionGrantedData,
    RedemptionRefused,
    RedemptionRefusedData,
)
from servicekit.mongo import Doc
from servicekit.outbox import outbox_entries

from .domain.balances import ANNOUNCED_UNITS

PRODUCER = "account-service"
_ENTRY_NAMESPACE = uuid.UUID("6f1d7a52-3c0e-4d7b-9a55-8f2d0c9b1e41")


def implied_events(doc: Doc, topic: Topic) -> list[dict[str, Any]]:
    """The decision's events, ready to send (outbox entries)."""
    if "events" in doc:  # decided before the events were derived: as stored
        return list(doc["events"])
    return outbox_entries(topic, list(announced(doc)))


def stored_events(doc: Doc, topic: Topic) -> list[AnyEvent]:
    """The decision's events as models (for checks and tools)."""
    return [parse_event(str(e["value"]).encode()) for e in implied_events(doc, topic)]


def announced(doc: Doc) -> Iterator[AnyEvent]:
    key, refused = str(doc["_id"]), doc.get("refused")
    common: dict[str, Any] = {
        "subject": doc["msisdn"],
        "producer": PRODUCER,
        "correlation_id": doc["correlation_id"],
        "causation_id": doc["cause_event_id"],
        "occurred_at": doc["at"],
    }
    cause = {"cause_event_id": doc["cause_event_id"], "cause_event_type": doc["cause_event_type"]}
    for entry in doc["entries"]:
        if entry["unit"] in ANNOUNCED_UNITS:  # voice and SMS allowances: journaled only
            yield BalanceChanged.new(
                **common,
                event_id=uuid.uuid5(_ENTRY_NAMESPACE, entry["entry_id"]),
                data=BalanceChangedData(**_announced_entry(entry), **cause),
            )
    if refused and "available" in refused:  # a debit refused (domain.balances.Refusal)
        yield BalanceChangeRejected.new(
            **common,
            event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:refused"),
            data=BalanceChangeRejectedData(
                **cause,
                account=refused["account"],
                requested_delta=-refused["requested"],
                available=refused["available"],
                reason=refused["reason"],
            ),
        )
    if doc["cause_event_type"] == "PointsRedeemed":
        yield _redemption_answer(doc, common)


def _announced_entry(entry: Doc) -> dict[str, Any]:
    fields = ("entry_id", "account", "unit", "delta", "balance_after", "reason", "description")
    return {name: entry[name] for name in fields}


def _redemption_answer(doc: Doc, common: dict[str, Any]) -> AnyEvent:
    """Loyalty's answer, in the same decision as the grant: it keeps or gives back the points."""
    key, refused = str(doc["_id"]), doc.get("refused")
    answering: dict[str, Any] = {
        "redemption_id": key.removeprefix("redemption:"),
        "granter": PRODUCER,
        "cause_event_id": doc["cause_event_id"],
    }
    if refused and "detail" in refused:  # declined (domain.balances.Declined)
        return RedemptionRefused.new(
            **common,
            event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:refused"),
            data=RedemptionRefusedData(
                **answering, reason=refused["reason"], detail=refused["detail"], refused_at=doc["at"]
            ),
        )
    entries = doc["entries"]
    return RedemptionGranted.new(
        **common,
        event_id=uuid.uuid5(_ENTRY_NAMESPACE, f"{key}:granted"),
        data=RedemptionGrantedData(
            **answering, granted_at=doc["at"], description=entries[0]["description"] if entries else ""
        ),
    )
