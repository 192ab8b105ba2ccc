"""Receipts and alerts: events other services publish, pushed to the subscriber's devices.

Sent first, recorded after (`receipts`, one document per event and device): a crash in
between re-sends on redelivery, which the phone shows once (collapse id = the event id);
a redelivered or replayed event whose receipts exist is not sent again. What is still news
is decided by the event's kind (domain.notices.news_until), not by its age alone.

Only devices of the number's current tenancy get a push: the boundary the last lifecycle
event recorded, or a newer one a device registered by a new owner tells (directory.py), so
the new owner's receipts never reach the previous owner's phone.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from mobi_contracts import AnyEvent
from servicekit.mongo import Store

from .directory import Directory, current_tenancy, language_of, of_current_tenancy
from .domain.notices import Notice, news_until, notice_for
from .push import Outcome, Push, Pusher
from .store import RECEIPTS

TRANSACTIONAL = Counter(
    "transactional_pushes_total",
    "Receipts and alerts pushed, by kind and outcome",
    ["service", "kind", "outcome"],
)


class Transactional:
    def __init__(
        self, store: Store, directory: Directory, pusher: Pusher, service: str, rules: dict[str, Any]
    ) -> None:
        self.store = store
        self.directory = directory
        self.pusher = pusher
        self.service = service
        self.rules = rules

    async def handle(self, events: list[AnyEvent]) -> None:
        now = datetime.now(UTC)
        notices: list[tuple[AnyEvent, Notice]] = []
        for event in events:
            notice = notice_for(event, self.rules)
            if notice is None:
                continue
            if now > news_until(event, notice, self.rules):  # a replay, or a very long outage
                TRANSACTIONAL.labels(self.service, notice.kind, "stale").inc()
                continue
            notices.append((event, notice))
        gate = asyncio.Semaphore(16)

        async def bounded(event: AnyEvent, notice: Notice) -> None:
            async with gate:
                await self.push_one(event, notice)

        await asyncio.gather(*(bounded(e, n) for e, n in notices))

    async def push_one(self, event: AnyEvent, notice: Notice) -> None:
        msisdn = event.subject
        event_id = str(event.event_id)
        devices = await self.directory.devices_of(msisdn)
        if not devices:
            return  # most subscribers: one read and done
        done, recorded = await asyncio.gather(
            self.store[RECEIPTS].find({"event_id": event_id}).to_list(),
            self.directory.tenancy_of(msisdn),
        )
        tenancy = current_tenancy(devices, recorded)
        devices = [d for d in devices if of_current_tenancy(d, tenancy)]
        prefs = await self.directory.preferences(msisdn, tenancy)
        sent_to = {r["device_id"] for r in done}
        pushes = []
        for device in devices:
            if device["_id"] in sent_to:
                continue
            lang = language_of(prefs, device.get("locale"))
            pushes.append(
                Push(
                    device_id=device["_id"],
                    platform=device["platform"],
                    token=device["token"],
                    title=notice.title[lang],
                    body=notice.body[lang],
                    collapse_id=event_id,
                    deep_link=notice.deep_link,
                    data={"kind": notice.kind, **notice.data},
                    high_priority=True,
                )
            )
        if not pushes:
            return
        outcomes = await self.pusher.send_all(pushes)
        now = datetime.now(UTC)
        await self.store.insert_new(
            RECEIPTS,
            [
                {
                    "_id": f"{event_id}:{p.device_id}",
                    "event_id": event_id,
                    "device_id": p.device_id,
                    "msisdn": msisdn,
                    "kind": notice.kind,
                    "outcome": o.value,
                    "at": now,
                }
                for p, o in zip(pushes, outcomes, strict=True)
            ],
        )
        dead = [p for p, o in zip(pushes, outcomes, strict=True) if o is Outcome.UNREGISTERED]
        if dead:
            await self.directory.prune([p.device_id for p in dead], {p.device_id: p.token for p in dead})
        for o in outcomes:
            TRANSACTIONAL.labels(self.service, notice.kind, o.value).inc()
