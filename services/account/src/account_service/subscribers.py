"""The subscriber registry's changes (the operator's provisioning) and their lifecycle events.

A change is decided on the number's latest document (domain.provisioning) and claimed by
inserting it into `subscriber_changes` under its `change_id` "<msisdn>:<seq>" (unique: of
two requests racing for the same number, one decides seq N+1 and the other decides again
on the state after it). The claim holds the document's new fields and the lifecycle event
(outbox in the same document), so a decision and its announcement never come apart. The
completion, idempotent, sets the fields on `subscribers` (only forward: `change_seq`),
ends the number's sessions when the change says so, publishes the event and clears the
outbox. A crash in between is completed by the next request for the number (it rolls the
document forward first) or by the periodic pass, which completes every claim still pending.
Why a claim rather than one versioned write of `subscribers`: FerretDB does not make a
conditional update atomic, and two lifecycle events named by one change id would be one
too many for the consumers that dedupe by it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from mobi_contracts import Topic
from mobi_contracts.topics import SUBSCRIBER_LIFECYCLE
from servicekit.errors import unavailable
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store
from servicekit.outbox import OUTBOX, PENDING, SINCE, OutboxRelay, outbox_entries

from .auth_flow import AuthService
from .domain.provisioning import SubscriberChange, change_id, decide
from .store import SUBSCRIBER_CHANGES, SUBSCRIBERS

log = logging.getLogger(__name__)
ATTEMPTS = 5  # of deciding a change when another request for the number keeps coming first


class SubscriberRegistry:
    def __init__(
        self,
        store: Store,
        publisher: EventPublisher,
        auth: AuthService,
        service: str,
        topic: Topic = SUBSCRIBER_LIFECYCLE,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.auth = auth
        self.topic = topic
        self.relay = OutboxRelay(store, publisher, service, SUBSCRIBER_CHANGES)

    async def provision(self, msisdn: str, wanted: Mapping[str, Any], correlation_id: str) -> str | None:
        """Apply what the BSS says about the number; the change id, or None when nothing changed."""
        for _ in range(ATTEMPTS):
            before = await self.current(msisdn)
            change = decide(msisdn, before, wanted, datetime.now(UTC), correlation_id)
            if change is None:
                return None
            # Nobody reads the new owner's data under a session opened before the change.
            if change.new_owner:
                await self.auth.forget_owner(msisdn)
            elif change.ends_sessions:
                await self.auth.end_all_sessions(msisdn)
            claim = self._claim_document(change)
            if not await self.store.claim(SUBSCRIBER_CHANGES, claim.pop("_id"), **claim):
                continue  # another request decided this seq first: decide again on its state
            await self.complete({"_id": change.change_id, **claim})
            return change.change_id
        raise unavailable("the subscription is being changed by other requests; retry")

    async def current(self, msisdn: str) -> Doc | None:
        """The subscriber document with every claimed change applied (a crash may have left
        the last claim incomplete)."""
        doc = await self.store[SUBSCRIBERS].find_one({"_id": msisdn})
        seq = int(doc.get("change_seq", 0)) if doc else 0
        while True:
            claim = await self.store[SUBSCRIBER_CHANGES].find_one({"_id": change_id(msisdn, seq + 1)})
            if claim is None:
                return doc
            if claim.get(PENDING):  # claimed, and the request never completed it
                log.warning("completing a provisioning change", extra={"change": claim["_id"]})
                await self.complete(claim)
            else:  # completed, but the document's write was lost (another writer's)
                await self._apply(claim)
            doc = {**(doc or {"_id": msisdn}), **claim["state"], "change_seq": claim["seq"]}
            seq += 1

    def _claim_document(self, change: SubscriberChange) -> Doc:
        now = datetime.now(UTC)
        entries = outbox_entries(self.topic, [change.event] if change.event else [])
        return {
            "_id": change.change_id,
            "msisdn": change.msisdn,
            "seq": change.seq,
            "state": change.state,
            "ends_sessions": change.ends_sessions,
            "event_type": change.event.event_type if change.event else None,
            "at": now,
            "rev": 1,
            # Pending until completed, events or not: the periodic pass finds it by the flag.
            OUTBOX: entries,
            SINCE: now,
            PENDING: True,
        }

    async def complete(self, claim: Doc) -> None:
        """Apply a claimed change to the subscriber document, end sessions, publish its event,
        mark it done. Idempotent: every step may be repeated."""
        await self._apply(claim)
        if claim.get("ends_sessions"):
            # Also after the write: nobody who logged in meanwhile keeps a session.
            await self.auth.end_all_sessions(claim["msisdn"])
        if claim.get(OUTBOX):
            await self.publisher.publish_serialized(claim[OUTBOX])
        await self.relay.clear(claim)

    async def _apply(self, claim: Doc) -> None:
        fields = {**claim["state"], "change_seq": claim["seq"]}
        msisdn = claim["msisdn"]
        if claim["seq"] == 1:
            try:
                await self.store[SUBSCRIBERS].insert_one({"_id": msisdn, **fields})
                return
            except DuplicateKeyError:
                pass  # a document from before changes were claimed (the seed, older builds)
        await self.store[SUBSCRIBERS].update_one(
            {
                "_id": msisdn,
                "$or": [{"change_seq": {"$exists": False}}, {"change_seq": {"$lt": claim["seq"]}}],
            },
            {"$set": fields},
        )

    async def complete_pending(self, older_than: timedelta = timedelta(seconds=5)) -> int:
        """The periodic pass: complete the claims a crash left pending, oldest first."""
        cutoff = datetime.now(UTC) - older_than
        pending = (
            await self.store[SUBSCRIBER_CHANGES].find({PENDING: True}).sort(SINCE, 1).limit(200).to_list()
        )
        done = 0
        for claim in pending:
            if claim.get(SINCE) and claim[SINCE] < cutoff:
                await self.complete(claim)
                done += 1
        return done

    async def run_completer(self, every_seconds: float = 2.0) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.complete_pending()
            except Exception:
                log.exception("completing provisioning changes failed")
            await asyncio.sleep(max(0.1, every_seconds - (time.monotonic() - started)))
