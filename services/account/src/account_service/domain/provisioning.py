"""What a provisioning request (the operator's BSS) changes about a number, and which event of
its life it announces (no I/O).

A number is a subscriber's for a *tenancy*: from `owner_since` (first provisioning, or the
last change of owner) until it is given to another person, terminated or ported out. Each
change of the subscriber document is decision number `seq` of the number (`change_id`
"<msisdn>:<seq>", unique: the claim), announced by at most one lifecycle event named by it.

- another name: a new owner. The tenancy starts now (`owner_since`, and `since`, the date
  the app shows and loyalty counts tenure from): `SubscriberOwnerChanged`;
- another status: `SubscriberSuspended`, `SubscriberReactivated`, `SubscriberTerminated` or
  `SubscriberPortedOut`. A number coming back from terminated or ported out starts a new
  tenancy too: what the ended one left (balances, history) was closed with it;
- the same request again, or only the plan or `ported_in`: no lifecycle event (a retry of
  the same request changes nothing at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mobi_contracts import AnyEvent
from mobi_contracts.events.subscriber import (
    SubscriberLifecycleData,
    SubscriberOwnerChanged,
    SubscriberOwnerChangedData,
    SubscriberPortedOut,
    SubscriberReactivated,
    SubscriberSuspended,
    SubscriberTerminated,
)
from servicekit.tenancy import EPOCH, at_store_precision

PRODUCER = "account-service"
ENDED = frozenset({"terminated", "ported_out"})
DEFAULTS: dict[str, Any] = {"plan": "prepaid", "status": "active", "ported_in": False}
_EVENT_IDS = uuid.UUID("3b9e6f0c-58a2-4d1e-b7c4-0a1f2e3d4c5b")
_BY_STATUS: dict[str, type[AnyEvent]] = {
    "suspended": SubscriberSuspended,
    "active": SubscriberReactivated,
    "terminated": SubscriberTerminated,
    "ported_out": SubscriberPortedOut,
}


def owner_since_of(doc: Mapping[str, Any] | None) -> datetime:
    """When the number's current tenancy began: recorded since tenancies exist; before that,
    the activation date (`since`); for a number with neither, since always."""
    if not doc:
        return EPOCH
    for field in ("owner_since", "since"):
        value = doc.get(field)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return EPOCH


@dataclass(frozen=True)
class SubscriberChange:
    """Decision `seq` on a number: the subscriber document's fields after it, and its event."""

    msisdn: str
    seq: int
    state: dict[str, Any]
    event: AnyEvent | None
    new_owner: bool
    ends_sessions: bool

    @property
    def change_id(self) -> str:
        return change_id(self.msisdn, self.seq)


def change_id(msisdn: str, seq: int) -> str:
    return f"{msisdn}:{seq}"


def decide(
    msisdn: str,
    before: Mapping[str, Any] | None,
    wanted: Mapping[str, Any],
    now: datetime,
    correlation_id: str,
) -> SubscriberChange | None:
    """The change `wanted` (name, plan, status, ported_in) makes to the document `before`;
    None when it changes nothing."""
    now = at_store_precision(now)
    wanted = {**DEFAULTS, **wanted}
    if before is None:  # a new subscription: its first tenancy starts now
        state = {**wanted, "owner_since": now}
        return SubscriberChange(msisdn, 1, state, None, new_owner=False, ends_sessions=False)
    current = {k: before.get(k, DEFAULTS.get(k)) for k in wanted}
    if current == wanted:
        return None
    seq = int(before.get("change_seq", 0)) + 1
    previous_since = owner_since_of(before)
    old_status, status = current["status"], wanted["status"]
    new_owner = current["name"] != wanted["name"]
    returning = old_status in ENDED and status not in ENDED
    owner_since = now if new_owner or returning else previous_since
    state = {**wanted, "owner_since": owner_since}
    if new_owner:
        state["since"] = now  # the new owner's activation: tenure counts from it
    data: dict[str, Any] = {
        "change_id": change_id(msisdn, seq),
        "status": status,
        "plan": wanted["plan"],
        "owner_since": owner_since,
        "changed_at": now,
    }
    event: AnyEvent | None = None
    if new_owner:
        event = _event(
            SubscriberOwnerChanged,
            msisdn,
            SubscriberOwnerChangedData(**data, previous_owner_since=previous_since),
            correlation_id,
        )
    elif status != old_status:
        event = _event(_BY_STATUS[status], msisdn, SubscriberLifecycleData(**data), correlation_id)
    return SubscriberChange(
        msisdn, seq, state, event, new_owner=new_owner, ends_sessions=new_owner or status != old_status
    )


def _event(kind: type[AnyEvent], msisdn: str, data: SubscriberLifecycleData, correlation_id: str) -> AnyEvent:
    return kind.new(
        subject=msisdn,
        producer=PRODUCER,
        correlation_id=correlation_id or data.change_id,
        # Named by the change: a relay repeated after a crash publishes the same event.
        event_id=uuid.uuid5(_EVENT_IDS, data.change_id),
        occurred_at=data.changed_at,
        data=data,
    )
