"""Transactional outbox in the same document as the state it describes.

A state change and the events it implies are written by ONE single-document update (the
document's `outbox` list), so a crash can never keep one without the other. Relaying:

- after a consumer batch: the handler publishes the entries it just wrote and only then
  is the batch committed; a crash in between redelivers the batch, the handler finds the
  events applied and publishes the stored entries again (consumers dedupe by event id);
- after an HTTP request: `relay()` right away, and `sweep()` every few seconds for
  documents a crash left with entries (`outbox_since` set), and `flush()` at shutdown.
  Relayed entries are cleared with a versioned write, so clearing never overwrites a newer
  state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mobi_contracts import AnyEvent, Topic

from .kafka.publisher import EventPublisher, event_headers
from .metrics import OUTBOX_OLDEST, OUTBOX_PENDING
from .mongo import Conflict, Doc, Store, save_versioned

log = logging.getLogger(__name__)

OUTBOX = "outbox"
SINCE = "outbox_since"
# An equality flag to find pending documents: FerretDB pushes `field == value` down to its
# backend but evaluates range filters (`$lt`, `$ne`) in Go over the whole collection.
PENDING = "outbox_pending"


def outbox_entries(topic: Topic, events: Sequence[AnyEvent]) -> list[dict[str, Any]]:
    """Storable, ready-to-send form of events (serialized once, at the state change)."""
    return [
        {
            "id": str(event.event_id),
            "topic": topic.name,
            "key": event.subject,
            "value": event.model_dump_json(),
            # A mapping, not pairs: FerretDB refuses nested arrays.
            "headers": {k: v.decode() for k, v in event_headers(event)},
            "cause": event.causation_id,
        }
        for event in events
    ]


def with_pending(changes: dict[str, Any], entries: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Add pending entries to a `$set` of changes (for writes that `relay()` clears)."""
    if not entries:
        return changes
    return {**changes, OUTBOX: entries, SINCE: now, PENDING: True}


class OutboxRelay:
    def __init__(self, store: Store, publisher: EventPublisher, service: str, collection: str) -> None:
        self.store = store
        self.publisher = publisher
        self.service = service
        self.collection = collection

    async def relay(self, doc: Doc) -> None:
        """Publish a document's pending entries, then clear them if nobody wrote since."""
        entries = doc.get(OUTBOX) or []
        if not entries:
            return
        await self.publisher.publish_serialized(entries)
        await self.clear(doc)

    async def clear(self, doc: Doc) -> None:
        """Mark a document's entries relayed (after `publisher.publish_serialized` of them)."""
        try:
            await save_versioned(
                self.store, self.collection, doc["_id"], doc["rev"], {OUTBOX: [], SINCE: None, PENDING: False}
            )
        except Conflict:
            # A newer write replaced the list; the sweep will look at it again. Entries
            # published twice are harmless: consumers dedupe by event id.
            log.info("outbox changed while relaying", extra={"doc": str(doc["_id"])})

    async def sweep(self, older_than: timedelta = timedelta(seconds=5), limit: int = 200) -> int:
        now = datetime.now(UTC)
        # Oldest first, so a steady stream of new entries can never starve an old one.
        pending = (
            await self.store[self.collection].find({PENDING: True}).sort(SINCE, 1).limit(limit).to_list()
        )
        stuck = [doc for doc in pending if doc.get(SINCE) and now - doc[SINCE] > older_than]
        for doc in stuck:
            await self.relay(doc)
        oldest = min((doc[SINCE] for doc in pending if doc.get(SINCE)), default=now)
        OUTBOX_PENDING.labels(self.service, self.collection).set(len(pending) - len(stuck))
        OUTBOX_OLDEST.labels(self.service, self.collection).set((now - oldest).total_seconds())
        return len(stuck)

    async def flush(self, batch: int = 200) -> int:
        """Relay every pending entry now, however young (at shutdown, after the last request:
        what a relay after a request could not send goes now, not after the restart)."""
        total = 0
        while True:
            relayed = await self.sweep(older_than=timedelta(0), limit=batch)
            total += relayed
            if relayed < batch:
                if total:
                    log.info("outbox flushed", extra={"collection": self.collection, "entries": total})
                return total

    async def run_sweeper(self, every_seconds: float = 2.0) -> None:
        """Background task: relays what a crash left behind."""
        while True:
            started = time.monotonic()
            try:
                await self.sweep()
            except Exception:
                log.exception("outbox sweep failed", extra={"collection": self.collection})
            await asyncio.sleep(max(0.1, every_seconds - (time.monotonic() - started)))
