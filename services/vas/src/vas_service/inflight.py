"""Use cases under way, and the pass that completes what a crash or an outage left half done.

Every use case that spans writes (activate, renew a chunk, skip, cancel, turn auto-renew off,
end a tenancy's subscriptions) is one claim (a unique insert that decides it) and a completion
(the writes and publications the decision implies, each idempotent: unique inserts, events
named by the decision). A marker is inserted *before* the claim and deleted when the
completion has run; a crash, a SIGKILL or an outage in between leaves the marker, and the
resume pass runs the completion again, as often as it takes. A marker whose claim was never
made is dropped after a while (the request failed before deciding anything).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge

from servicekit.mongo import Doc, Store

from .store import INFLIGHT

log = logging.getLogger(__name__)
Completion = Callable[[Doc], Awaitable[None]]
ABANDONED_AFTER = timedelta(minutes=10)


class NotYet(Exception):
    """The completion waits for something (a charge's answer, a claim still being made): the
    marker stays and the resume pass tries again later."""


def abandoned(marker: Doc) -> bool:
    """A marker whose claim was never made this long after: the request failed before deciding."""
    return bool(datetime.now(UTC) - marker["at"] > ABANDONED_AFTER)


RESUMED = Counter(
    "vas_use_cases_resumed_total", "Use cases completed by the resume pass", ["service", "kind"]
)
OPEN = Gauge("vas_use_cases_open", "Use cases under way or left half done", ["service"])


class Inflight:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def open(self, marker_id: str, kind: str, **ref: Any) -> None:
        """Mark a use case as under way (before its claim); a marker already there is kept."""
        await self.store.claim(INFLIGHT, marker_id, kind=kind, at=datetime.now(UTC), **ref)

    async def close(self, marker_id: str) -> None:
        await self.store[INFLIGHT].delete_one({"_id": marker_id})

    async def older_than(self, age: timedelta, limit: int = 200) -> list[Doc]:
        """Markers left longer than `age` (the collection holds only what is under way)."""
        cutoff = datetime.now(UTC) - age
        markers = await self.store[INFLIGHT].find({}).sort([("at", 1)]).limit(limit).to_list()
        return [m for m in markers if m["at"] < cutoff]


class Resumer:
    """Runs the completion of every use case left half done longer than `after`."""

    def __init__(self, inflight: Inflight, service: str, after: timedelta = timedelta(seconds=20)) -> None:
        self.inflight = inflight
        self.service = service
        self.after = after
        self.completions: dict[str, Completion] = {}

    def register(self, kind: str, completion: Completion) -> None:
        self.completions[kind] = completion

    async def run_once(self) -> int:
        stale = await self.inflight.older_than(self.after)
        OPEN.labels(self.service).set(len(stale))
        done = 0
        for marker in stale:
            completion = self.completions.get(marker["kind"])
            if completion is None:
                log.error(
                    "no completion for a use case", extra={"kind": marker["kind"], "marker": marker["_id"]}
                )
                continue
            try:
                await completion(marker)
            except NotYet:
                continue
            except Exception:
                log.exception("resuming a use case failed", extra={"marker": marker["_id"]})
                continue
            await self.inflight.close(marker["_id"])
            RESUMED.labels(self.service, marker["kind"]).inc()
            done += 1
        return done

    async def run_forever(self, every_seconds: float = 5.0) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.run_once()
            except Exception:
                log.exception("resume pass failed")
            await asyncio.sleep(max(0.5, every_seconds - (time.monotonic() - started)))
