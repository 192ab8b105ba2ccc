"""Promotions as notify keeps them, and the inbox: the active promotions whose audience
includes the subscriber, resolved when the inbox is read (nothing copied per subscriber)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from mobi_contracts.events.notify import Audience, PromotionPublished
from servicekit.mongo import Doc, Store
from servicekit.tenancy import EPOCH, of_tenancy

from .directory import Directory
from .domain.audience import matches, needs
from .store import PROMOTIONS, READS


def promotion_doc(event: PromotionPublished) -> Doc:
    data = event.data.model_dump(mode="python")
    return {
        "_id": data.pop("promotion_id"),
        **data,
        "event_id": str(event.event_id),
        "published_at": event.occurred_at,
        "fanout": "pending",
        "listed": True,
    }


async def store_published(store: Store, events: list[PromotionPublished]) -> None:
    """The first publish of an id wins; a re-publish (a retry, a replay) changes nothing."""
    await store.insert_new(PROMOTIONS, [promotion_doc(e) for e in events])


class Inbox:
    def __init__(self, store: Store, directory: Directory, cache_seconds: float) -> None:
        self.store = store
        self.directory = directory
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[tuple[Doc, Audience]]] = (0.0, [])

    async def listed(self) -> list[tuple[Doc, Audience]]:
        """Promotions still listed, read at most every `cache_seconds` (they are few)."""
        at, cached = self._cached
        if time.monotonic() - at < self.cache_seconds:
            return cached
        docs = await self.store[PROMOTIONS].find({"listed": True}).to_list()
        now = datetime.now(UTC)
        for doc in docs:
            if doc["valid_until"] <= now:  # expired: out of every later read
                await self.store[PROMOTIONS].update_one({"_id": doc["_id"]}, {"$set": {"listed": False}})
        fresh = [(d, Audience.model_validate(d["audience"])) for d in docs if d["valid_until"] > now]
        self._cached = (time.monotonic(), fresh)
        return fresh

    async def for_subscriber(self, msisdn: str, owner_since: datetime = EPOCH) -> list[dict[str, Any]]:
        """The inbox; promotions a previous owner of the number read are unread here."""
        now = datetime.now(UTC)
        active = [
            (doc, audience)
            for doc, audience in await self.listed()
            if doc["valid_from"] <= now and (doc.get("send_at") or doc["valid_from"]) <= now
        ]
        wanted: set[str] = set().union(*(needs(a) for _, a in active)) if active else set()
        attrs = await self.directory.attributes_of(msisdn, wanted)
        mine = [doc for doc, audience in active if matches(audience, msisdn, attrs)]
        if not mine:
            return []
        reads = await self.store[READS].find({"msisdn": msisdn}).to_list()
        read = {r["promotion"] for r in reads if of_tenancy(r.get("at"), owner_since)}
        mine.sort(key=lambda d: d.get("send_at") or d["valid_from"], reverse=True)
        return [view(doc, doc["_id"] in read) for doc in mine]

    async def is_listed_for(self, msisdn: str, promotion_id: str) -> bool:
        return any(item["id"] == promotion_id for item in await self.for_subscriber(msisdn))

    async def mark_read(self, msisdn: str, promotion_id: str) -> None:
        """Read now (a mark a previous owner of the number left is replaced: one writer, the
        subscriber's own request)."""
        await self.store[READS].update_one(
            {"_id": f"{msisdn}:{promotion_id}"},
            {"$set": {"msisdn": msisdn, "promotion": promotion_id, "at": datetime.now(UTC)}},
            upsert=True,
        )


def view(doc: Doc, read: bool) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "campaign": doc.get("campaign"),
        "title": doc["title"],
        "body": doc["body"],
        "deep_link": doc["deep_link"],
        "image_url": doc.get("image_url"),
        "valid_from": doc["valid_from"],
        "valid_until": doc["valid_until"],
        "priority": doc.get("priority", "normal"),
        "read": read,
    }
