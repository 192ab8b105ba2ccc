"""What notify keeps of other services' events to resolve audiences without calling them.

One collection per source topic, so each document has one writer (Kafka gives a
subscriber's partition of a topic to one consumer). Events of one subscriber on one topic
arrive in order, so the last write is the current state; a replay rewrites the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import MemberEnrolled, TierChanged
from mobi_contracts.events.vas import PlanChanged, VasCancelled, VasConfirmed
from servicekit.mongo import Store, Update

from .domain.audience import bucket_of
from .store import BILLING, TIERS, VAS

# event type -> (collection, document id, the fields it sets; None deletes the document).
# One line per projected event.
Projector = Callable[[Any], tuple[str, str, dict[str, Any] | None]]
PROJECTORS: dict[type[AnyEvent], Projector] = {
    PlanChanged: lambda e: (BILLING, e.subject, {"billing": e.data.billing}),
    MemberEnrolled: lambda e: (TIERS, e.subject, {"tier": e.data.tier}),
    TierChanged: lambda e: (TIERS, e.subject, {"tier": e.data.to_tier}),
    VasConfirmed: lambda e: (VAS, f"{e.subject}:{e.data.code}", {"msisdn": e.subject, "code": e.data.code}),
    VasCancelled: lambda e: (VAS, f"{e.subject}:{e.data.code}", None),
}


async def project(store: Store, events: list[AnyEvent]) -> None:
    """In event order per document: a confirm then a cancel of one VAS in a batch ends absent."""
    now = datetime.now(UTC)
    last: dict[tuple[str, str], tuple[AnyEvent, dict[str, Any] | None]] = {}
    for event in events:
        projector = PROJECTORS.get(type(event))
        if projector is not None:
            collection, doc_id, fields = projector(event)
            last[(collection, doc_id)] = (event, fields)
    updates: dict[str, list[Update]] = {}
    deletes = []
    for (collection, doc_id), (event, fields) in last.items():
        if fields is None:
            deletes.append(store[collection].delete_one({"_id": doc_id}))
            continue
        values = {**fields, "bucket": bucket_of(event.subject), "at": event.occurred_at, "seen": now}
        updates.setdefault(collection, []).append(Update({"_id": doc_id}, {"$set": values}, upsert=True))
    for collection, batch in updates.items():
        await store.update_each(collection, batch)
    await store.bounded_all(deletes)
