"""A number's tenancy: which records belong to its current owner.

Numbers are recycled. The account service records when the current owner's tenancy began
(`owner_since`: first provisioning, or the last change of owner) and puts it in every access
token it signs (claim `owner_since`, epoch seconds to the millisecond). A record any service
keeps about a number carries when it was made; one made before the caller's `owner_since`
belongs to a previous owner and is never shown to the caller. Views apply that from the
token, so a new owner sees nothing of the old one even before the services have consumed the
`subscriber.lifecycle.v1` event that tells them to close what the previous tenancy left.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

if TYPE_CHECKING:
    from mobi_contracts import AnyEvent

    from .mongo import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "since always": tokens and records from before tenancies


def at_store_precision(at: datetime) -> datetime:
    """`at` cut to the millisecond, as the store keeps it, so what is compared is what is read back."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def to_claim(owner_since: datetime) -> float:
    return round(owner_since.timestamp(), 3)


def from_claim(value: Any) -> datetime:
    """The claim of a token; a token from before tenancies (or a bad value) means EPOCH."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return at_store_precision(datetime.fromtimestamp(float(value), UTC))
    return EPOCH


def of_tenancy(made_at: datetime | None, owner_since: datetime) -> bool:
    """Whether a record made at `made_at` belongs to the tenancy that began at `owner_since`
    (a record with no time is as old as the number: shown only from EPOCH)."""
    if owner_since <= EPOCH:
        return True
    if made_at is None:
        return False
    made = made_at if made_at.tzinfo else made_at.replace(tzinfo=UTC)
    return made >= owner_since


def since_filter(field: str, owner_since: datetime) -> dict[str, Any]:
    """A store filter keeping records of the tenancy: `{field: {"$gte": owner_since}}`, or
    nothing for EPOCH (so queries of numbers that never changed hands stay as they were)."""
    return {} if owner_since <= EPOCH else {field: {"$gte": owner_since}}


async def record_tenancy(
    store: Store, collection: str, msisdn: str, owner_since: datetime, change_id: str, **fields: Any
) -> bool:
    """Remember that the number's records from before `owner_since` are an ended tenancy's
    (one document per number, `_id` the MSISDN; written by one consumer, Kafka keeps a
    number's events on one partition). Only forward: a replayed older change is a no-op.
    True when the boundary moved."""
    try:
        result = await store[collection].update_one(
            {
                "_id": msisdn,
                "$or": [{"owner_since": {"$exists": False}}, {"owner_since": {"$lt": owner_since}}],
            },
            {"$set": {"owner_since": owner_since, "change_id": change_id, **fields}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False  # the number's boundary is already at or past this one
    return bool(result.matched_count or result.upserted_id is not None)


def latest_tenancy_ends(events: Iterable[AnyEvent]) -> list[AnyEvent]:
    """Of a batch, the newest tenancy end (`subscriber.lifecycle.v1`) per number: only the last
    change of hands in a batch needs acting on, as it closes everything before it."""
    from mobi_contracts.topics import TENANCY_ENDED_EVENTS

    latest: dict[str, AnyEvent] = {}
    for event in events:
        if isinstance(event, TENANCY_ENDED_EVENTS):
            seen = latest.get(event.subject)
            if seen is None or event.data.changed_at > seen.data.changed_at:
                latest[event.subject] = event
    return list(latest.values())
