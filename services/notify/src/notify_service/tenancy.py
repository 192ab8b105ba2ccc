"""A number that changes hands (or whose subscription ends): notify forgets the previous
owner. Its devices and preferences go (no receipt of the new owner reaches a stranger's
phone), and so do the audience attributes of the ended tenancy (its loyalty tier, its VAS)
and its inbox read marks.

The number's boundary is recorded first (`tenancies`, only forward): transactional pushes,
campaign units and the pushes quiet hours were holding leave out devices from before it,
whatever is still stored (fanout.py reads the boundaries of a unit's numbers).
Every write is keyed by the boundary: a replay, or an older change arriving late, removes
nothing of the new owner's.
"""

from __future__ import annotations

from mobi_contracts import AnyEvent
from servicekit.mongo import Store
from servicekit.tenancy import latest_tenancy_ends, record_tenancy

from .directory import Directory, of_current_tenancy
from .domain.audience import bucket_of
from .store import DEVICES, PREFERENCES, READS, TENANCIES, TIERS, VAS


class TenancyEnds:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory

    async def apply(self, events: list[AnyEvent]) -> None:
        # One at a time (rare): each store call inside is bounded by the Store already, so an
        # outer bounded_all would wait on itself once a batch held more ends than its gate.
        for event in latest_tenancy_ends(events):
            await self._forget(event)

    async def _forget(self, event: AnyEvent) -> None:
        msisdn, boundary = event.subject, event.data.changed_at
        await record_tenancy(
            self.store, TENANCIES, msisdn, boundary, event.data.change_id, bucket=bucket_of(msisdn)
        )
        old = [d for d in await self.directory.devices_of(msisdn) if not of_current_tenancy(d, boundary)]
        for device in old:
            await self.store[DEVICES].delete_one({"_id": device["_id"], "msisdn": msisdn})
        prefs = await self.store[PREFERENCES].find_one({"_id": msisdn})
        if prefs is not None and not of_current_tenancy(prefs, boundary):
            await self.store[PREFERENCES].delete_one({"_id": msisdn, "updated_at": prefs.get("updated_at")})
        tier = await self.store[TIERS].find_one({"_id": msisdn})
        if tier is not None and tier.get("at") is not None and tier["at"] < boundary:
            await self.store[TIERS].delete_one({"_id": msisdn, "at": tier["at"]})
        await self.store.delete_where(VAS, {"msisdn": msisdn, "at": {"$lt": boundary}})
        await self.store.delete_where(READS, {"msisdn": msisdn, "at": {"$lt": boundary}})
