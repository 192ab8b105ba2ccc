"""The subscriber's consent log: append-only, and every entry is a claim.

An entry's `_id` names the decision it records (`<sub>:activated`, `<sub>:cancelled`,
`<charge>:skipped`, ...), so two concurrent requests record one decision; the events a
decision implies travel in the same document (kit outbox) and are relayed at once, or by the
sweeper when Kafka cannot take them now (the decision stands either way). Decisive entries
(`fact`) are what the views read per subscriber: the log itself is never read through a window
to decide what a subscription is.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from mobi_contracts import AnyEvent, Topic
from servicekit.buckets import hour_of
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending

from .store import CONSENTS

log = logging.getLogger(__name__)
RELAY_WAIT_SECONDS = 3.0  # longer, and the sweeper relays it: a decision never waits on Kafka
FACTS = ("activated", "cancelled", "refunded", "refused", "auto_renew_off", "auto_renew_on", "plan_changed")
SHOWN = (
    "subscription_id",
    "code",
    "action",
    "channel",
    "charge_id",
    "period",
    "amount_vnd",
    "reason",
    "how",
    "provider",
    "detail",
)


class ConsentLog:
    def __init__(self, store: Store, relay: OutboxRelay, topic: Topic) -> None:
        self.store = store
        self.relay = relay
        self.topic = topic

    async def append(
        self,
        msisdn: str,
        entry_id: str,
        action: str,
        channel: str,
        now: datetime,
        *,
        sub: Doc | None = None,
        events: list[AnyEvent] | None = None,
        **fields: Any,
    ) -> bool:
        """Append an entry (a claim of `entry_id`) and relay its events. False when the entry
        was there already (the decision was taken before)."""
        entries = outbox_entries(self.topic, events or [])
        body = {
            "msisdn": msisdn,
            "subscription_id": sub["_id"] if sub else None,
            "code": sub.get("code") if sub else None,
            "action": action,
            "channel": channel,
            "at": now,
            "hour": hour_of(datetime.now(UTC)),
            "rev": 1,
            **({"fact": True} if action in FACTS else {}),
            **{k: v for k, v in fields.items() if v is not None},
        }
        if not await self.store.claim(CONSENTS, entry_id, **with_pending(body, entries, now)):
            return False
        if entries:
            await self.relay_now({"_id": entry_id, "rev": 1, "outbox": entries})
        return True

    async def relay_now(self, doc: Doc) -> None:
        """Relay an entry's events, waiting a little: when Kafka cannot take them now the
        sweeper does it later, and the request goes on."""
        try:
            await asyncio.wait_for(self.relay.relay(doc), RELAY_WAIT_SECONDS)
        except Exception as exc:
            log.warning("events left to the sweeper", extra={"entry": doc["_id"], "error": repr(exc)})

    async def get(self, entry_id: str) -> Doc | None:
        return await self.store[CONSENTS].find_one({"_id": entry_id})

    async def facts(self, msisdn: str) -> list[Doc]:
        """The subscriber's decisive entries (a few per subscription)."""
        return await self.store[CONSENTS].find({"msisdn": msisdn, "fact": True}).to_list()

    async def month(self, msisdn: str, month: str) -> list[Doc]:
        """This month's charge outcomes and refunds."""
        return await self.store[CONSENTS].find({"msisdn": msisdn, "month": month}).to_list()

    async def newest(self, msisdn: str, limit: int, hidden: set[str], since: datetime | None) -> list[Doc]:
        """The log as the subscriber reads it, newest first: entries of the current tenancy only."""
        query: dict[str, Any] = {"msisdn": msisdn}
        if since is not None:
            query["at"] = {"$gte": since}
        rows = (
            await self.store[CONSENTS].find(query).sort([("at", -1)]).limit(limit + len(hidden) * 4).to_list()
        )
        mine = [r for r in rows if r.get("subscription_id") not in hidden][:limit]
        return [
            {"id": r["_id"], "at": r["at"], **{k: r[k] for k in SHOWN if r.get(k) is not None}} for r in mine
        ]
