"""A number that changes hands (or whose subscription ends): the previous owner's tickets are
hidden. The app already shows a caller only tickets filed since the token's `owner_since`;
this records the number's boundary (answers to older tickets are refused: the push would
reach the new owner) and marks the older tickets hidden. Both writes are keyed by the
boundary and only move forward, so a replay, or an older change replayed late, changes nothing.
"""

from __future__ import annotations

from mobi_contracts import AnyEvent
from servicekit.mongo import Store
from servicekit.tenancy import latest_tenancy_ends, record_tenancy

from .store import FEEDBACK, TENANCIES


class TenancyEnds:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(self, events: list[AnyEvent]) -> None:
        # One at a time (rare): each store call inside is bounded by the Store already.
        for event in latest_tenancy_ends(events):
            await self._close(event)

    async def _close(self, event: AnyEvent) -> None:
        boundary, change_id = event.data.changed_at, event.data.change_id
        await record_tenancy(self.store, TENANCIES, event.subject, boundary, change_id)
        await self.store.update_where(
            FEEDBACK,
            {"msisdn": event.subject, "created_at": {"$lt": boundary}, "hidden": {"$ne": True}},
            {"$set": {"hidden": True, "hidden_by": change_id}},
        )
