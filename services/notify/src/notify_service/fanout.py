"""Campaign fan-out: every targeted device gets one push, across crashes and replicas.

A campaign is cut into units: the devices of one bucket (`b017`), and later the devices
deferred to one quiet-hours end (`d2026-11-27T00:00`). Store cost per unit, not per device:

- claim: a unit is taken by inserting `promotion:unit:generation` (unique `_id`; many units
  in one `insert_many`), so two replicas never work the same unit;
- work: one indexed read of the bucket's devices (in `_id` order), of its preferences and
  of each attribute the audience needs; the audience is decided in memory;
- checkpoint: after each chunk of devices is pushed, one insert records the last device
  id and the counts. A unit resumes after its last checkpoint; the last one is `final`.

A process renews its liveness key in Redis every tick; a unit whose claimer's key has
expired (the process died) is claimed again with the next generation and resumes.

Stopping (SIGTERM: a deploy, a scale-down) drains: no new chunk starts, the chunks in flight
finish and are checkpointed, the liveness key is deleted so the next process takes over at
once, and nothing is pushed twice. What can repeat is a crash's (SIGKILL, OOM, a lost node):
the chunk each unit was pushing (at most `fanout_chunk` devices per unit in flight), and
the phone shows it once (collapse id = promotion id).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from mobi_contracts.events.notify import Audience
from servicekit.mongo import Doc, Store

from .directory import Directory, Preferences, language_of
from .domain.audience import Attributes, matches, needs, units_for
from .domain.quiet import in_quiet_hours, quiet_ends
from .push import Outcome, Push, Pusher
from .settings import NotifySettings
from .store import CLAIMS, DEFERRED, DEFERRED_SLOTS, PROGRESS, PROMOTIONS

log = logging.getLogger(__name__)

FANOUT_DEVICES = Counter(
    "promotion_fanout_devices_total",
    "Devices of campaigns, by outcome: targeted, sent, failed, pruned, deferred, opted_out",
    ["service", "outcome"],
)
FANOUT_UNITS = Counter(
    "promotion_fanout_units_total", "Fan-out units (buckets, deferred slots) finished", ["service"]
)
FANOUT_RUNNING = Gauge(
    "promotion_fanouts_running", "Campaign fan-outs this process is working on", ["service"]
)
FANOUT_PROGRESS = Gauge(
    "promotion_fanout_progress_ratio",
    "Share of a running campaign's units finished",
    ["service", "promotion"],
)
COUNTS = ("targeted", "sent", "failed", "pruned", "deferred", "opted_out")
NO_ATTRIBUTES = Attributes()
UNITS_AT_ONCE = 8  # units of one campaign pushed concurrently (keeps the HTTP/2 streams busy)
CLAIM_SLICE = 32


class Draining(Exception):
    """The process is stopping: a unit ends at its last checkpoint, another process resumes it."""


def owner_key(owner: str) -> str:
    return f"notify:fanout:owner:{owner}"


def promotion_push(promotion: Doc, device: Doc, prefs: Preferences) -> Push:
    lang = language_of(prefs, device.get("locale"))
    valid_until: datetime = promotion["valid_until"]
    return Push(
        device_id=device["_id"],
        platform=device["platform"],
        token=device["token"],
        title=promotion["title"][lang],
        body=promotion["body"][lang],
        collapse_id=promotion["_id"],
        deep_link=promotion["deep_link"],
        image_url=promotion.get("image_url"),
        data={"kind": "promotion", "promotion_id": promotion["_id"]},
        high_priority=promotion.get("priority") == "high",
        expires_at=int(valid_until.timestamp()),
    )


class FanOut:
    def __init__(
        self, store: Store, redis: Redis, directory: Directory, pusher: Pusher, settings: NotifySettings
    ) -> None:
        self.store = store
        self.redis = redis
        self.directory = directory
        self.pusher = pusher
        self.settings = settings
        self.service = settings.service_name
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self.draining = False

    # -- the loop ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("fan-out tick failed")
            await asyncio.sleep(self.settings.fanout_tick_seconds)

    async def stop(self) -> None:
        """Drain within `fanout_drain_seconds`, then cancel what is left (it resumes from its
        checkpoints elsewhere, its chunk in flight possibly sent twice)."""
        self.draining = True
        running = list(self.running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self.settings.fanout_drain_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                log.warning("fan-out drain timed out; chunks in flight were cancelled")
        await self.redis.delete(owner_key(self.owner))

    async def tick(self) -> None:
        if self.draining:
            return
        await self.redis.set(owner_key(self.owner), "1", ex=self.settings.fanout_owner_ttl_seconds)
        now = datetime.now(UTC)
        for promotion in await self.store[PROMOTIONS].find({"fanout": "pending"}).to_list():
            pid = promotion["_id"]
            if pid in self.running:
                continue
            if promotion["valid_until"] <= now:
                await self.store[PROMOTIONS].update_one({"_id": pid}, {"$set": {"fanout": "expired"}})
                continue
            if (promotion.get("send_at") or now) > now:
                continue  # scheduled for later
            if len(self.running) >= self.settings.fanout_campaigns_at_once:
                break
            self._start(pid, self.campaign(promotion))
        for slot in await self.store[DEFERRED_SLOTS].find({"state": "waiting"}).to_list():
            if slot["due_at"] <= now and slot["_id"] not in self.running:
                self._start(slot["_id"], self.deferred_slot(slot))

    def _start(self, key: str, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            FANOUT_RUNNING.labels(self.service).inc()
            try:
                await work
            except Draining:
                log.info("fan-out paused for shutdown at its checkpoints", extra={"unit": key})
            except Exception:
                log.exception("fan-out failed; it resumes at the next tick", extra={"unit": key})
            finally:
                FANOUT_RUNNING.labels(self.service).dec()
                self.running.pop(key, None)

        self.running[key] = asyncio.create_task(guarded(), name=f"fanout:{key}")

    # -- a campaign and its units -----------------------------------------------------------------

    async def campaign(self, promotion: Doc) -> None:
        pid = promotion["_id"]
        audience = Audience.model_validate(promotion["audience"])
        units = units_for(audience)
        wanted = needs(audience)
        numbers = frozenset(audience.msisdns)

        async def bucket_unit(unit: str, after: str | None) -> dict[str, int]:
            bucket = int(unit[1:])
            devices = await self.directory.devices_in_bucket(bucket)
            attrs = await self.directory.attributes_in_bucket(bucket, wanted) if wanted else {}
            prefs = await self.directory.preferences_in_bucket(bucket)
            return await self._push_unit(
                promotion,
                unit,
                [d for d in devices if after is None or d["_id"] > after],
                lambda d: matches(audience, d["msisdn"], attrs.get(d["msisdn"], NO_ATTRIBUTES), numbers),
                prefs,
                defer=True,
            )

        finished = await self._work_units(pid, units, bucket_unit)
        FANOUT_PROGRESS.labels(self.service, pid).set(len(finished & set(units)) / len(units))
        if set(units) <= finished:
            await self.store[PROMOTIONS].update_one(
                {"_id": pid, "fanout": "pending"},
                {"$set": {"fanout": "done", "fanned_out_at": datetime.now(UTC)}},
            )
            FANOUT_PROGRESS.remove(self.service, pid)
            log.info("campaign fanned out", extra={"promotion": pid})

    async def deferred_slot(self, slot: Doc) -> None:
        """The pushes quiet hours held back, sent when the window ends."""
        pid = slot["promotion"]
        unit = f"d{slot['slot']}"
        promotion = await self.store[PROMOTIONS].find_one({"_id": pid})

        async def deferred_unit(_: str, after: str | None) -> dict[str, int]:
            docs = await self.store[DEFERRED].find({"slot_key": slot["_id"]}).to_list()
            docs.sort(key=lambda d: d["_id"])
            devices = [
                {**d["device"], "_id": d["device_id"], "msisdn": d["msisdn"]}
                for d in docs
                if after is None or d["device_id"] > after
            ]
            # An opt-out made while the push waited holds it back too.
            current = await self.directory.preferences_of(sorted({d["msisdn"] for d in docs}))
            prefs = {
                d["msisdn"]: Preferences(
                    marketing_opt_out=current.get(d["msisdn"], Preferences()).marketing_opt_out,
                    language=d.get("language"),
                )
                for d in docs
            }
            return await self._push_unit(promotion or {}, unit, devices, lambda _: True, prefs, defer=False)

        live = promotion is not None and promotion["valid_until"] > datetime.now(UTC)
        if live and unit not in await self._work_units(pid, [unit], deferred_unit):
            return  # held by another live replica, or not finished: the next tick looks again
        await self.store[DEFERRED_SLOTS].update_one({"_id": slot["_id"]}, {"$set": {"state": "done"}})

    async def _work_units(
        self, pid: str, units: list[str], work: Callable[[str, str | None], Awaitable[dict[str, int]]]
    ) -> set[str]:
        """Claim the units nobody alive works on, work them; the set of finished units."""
        progress = await self.store[PROGRESS].find({"promotion": pid}).to_list()
        finished = {p["unit"] for p in progress if p.get("final")}
        resume: dict[str, str] = {}
        for p in progress:
            if p["last_device"] and p["last_device"] > resume.get(p["unit"], ""):
                resume[p["unit"]] = p["last_device"]
        latest: dict[str, tuple[int, str]] = {}
        for c in await self.store[CLAIMS].find({"promotion": pid}).to_list():
            if c["gen"] > latest.get(c["unit"], (0, ""))[0]:
                latest[c["unit"]] = (c["gen"], c["owner"])
        owners = sorted({owner for _, owner in latest.values() if owner != self.owner})
        alive = set()
        if owners:
            answers = await self.redis.mget([owner_key(o) for o in owners])
            alive = {o for o, a in zip(owners, answers, strict=True) if a is not None}
        # This process's own older claims are not in progress (one campaign task per promotion).
        todo = [
            (u, latest.get(u, (0, ""))[0] + 1)
            for u in units
            if u not in finished and latest.get(u, (0, ""))[1] not in alive
        ]
        claimed = await self._claim(pid, todo)
        if len(claimed) < len(todo):
            log.info(
                "units held by live replicas", extra={"promotion": pid, "held": len(todo) - len(claimed)}
            )
        gate = asyncio.Semaphore(UNITS_AT_ONCE)

        async def one(unit: str) -> None:
            async with gate:
                if self.draining:
                    raise Draining
                await work(unit, resume.get(unit))
                finished.add(unit)
                FANOUT_UNITS.labels(self.service).inc()

        # Every unit comes to its end (a checkpoint) before a failure is raised: no unit is
        # left pushing behind a campaign task that has already returned.
        results = await asyncio.gather(*(one(u) for u in claimed), return_exceptions=True)
        for failure in results:
            if isinstance(failure, BaseException):
                raise failure
        return finished

    async def _claim(self, pid: str, todo: list[tuple[str, int]]) -> list[str]:
        claimed: list[str] = []
        now = datetime.now(UTC)
        for start in range(0, len(todo), CLAIM_SLICE):
            part = todo[start : start + CLAIM_SLICE]
            docs = [
                {
                    "_id": f"{pid}:{u}:{g}",
                    "promotion": pid,
                    "unit": u,
                    "gen": g,
                    "owner": self.owner,
                    "at": now,
                }
                for u, g in part
            ]
            claimed.extend(doc["unit"] for doc in await self.store.insert_fresh(CLAIMS, docs))
        return claimed

    async def _push_unit(
        self,
        promotion: Doc,
        unit: str,
        devices: list[Doc],
        targeted: Callable[[Doc], bool],
        prefs: dict[str, Preferences],
        *,
        defer: bool,
    ) -> dict[str, int]:
        pid = promotion.get("_id", "")
        totals: Tally[str] = Tally()
        chunk = self.settings.fanout_chunk
        if not devices:
            await self._checkpoint(pid, unit, "", Tally(), final=True)
            return {}
        for start in range(0, len(devices), chunk):
            if self.draining:
                raise Draining
            part = devices[start : start + chunk]
            counts = await self._deliver(promotion, [d for d in part if targeted(d)], prefs, defer=defer)
            await self._checkpoint(pid, unit, part[-1]["_id"], counts, final=start + chunk >= len(devices))
            totals.update(counts)
        return dict(totals)

    async def _deliver(
        self, promotion: Doc, devices: list[Doc], prefs: dict[str, Preferences], *, defer: bool
    ) -> Tally[str]:
        counts: Tally[str] = Tally(targeted=len(devices))
        now = datetime.now(UTC)
        pushes: list[Push] = []
        deferred: list[Doc] = []
        for device in devices:
            p = prefs.get(device["msisdn"], Preferences())
            if p.marketing_opt_out:
                counts["opted_out"] += 1
            elif (
                defer
                and p.quiet_start is not None
                and p.quiet_end is not None
                and in_quiet_hours(now, p.quiet_start, p.quiet_end)
            ):
                deferred.append(self._deferral(promotion["_id"], device, p, quiet_ends(now, p.quiet_end)))
            else:
                pushes.append(promotion_push(promotion, device, p))
        if deferred:
            await self._defer(promotion["_id"], deferred)
            counts["deferred"] += len(deferred)
        outcomes = await self.pusher.send_all(pushes) if pushes else []
        dead = [push for push, o in zip(pushes, outcomes, strict=True) if o is Outcome.UNREGISTERED]
        counts["sent"] += sum(1 for o in outcomes if o is Outcome.SENT)
        counts["failed"] += sum(1 for o in outcomes if o is Outcome.FAILED)
        if dead:
            await self.directory.prune([p.device_id for p in dead], {p.device_id: p.token for p in dead})
            counts["pruned"] += len(dead)
        for outcome in COUNTS:
            if counts[outcome]:
                FANOUT_DEVICES.labels(self.service, outcome).inc(counts[outcome])
        return counts

    def _deferral(self, pid: str, device: Doc, prefs: Preferences, due: datetime) -> Doc:
        slot = due.strftime("%Y-%m-%dT%H:%M")
        return {
            "_id": f"{pid}:{device['_id']}",
            "slot_key": f"{pid}:{slot}",
            "slot": slot,
            "due_at": due,
            "device_id": device["_id"],
            "msisdn": device["msisdn"],
            "language": language_of(prefs, device.get("locale")),
            "device": {k: device.get(k) for k in ("platform", "token", "locale")},
        }

    async def _defer(self, pid: str, deferred: list[Doc]) -> None:
        await self.store.insert_new(DEFERRED, deferred)
        slots = {d["slot_key"]: d for d in deferred}
        await self.store.insert_new(
            DEFERRED_SLOTS,
            [
                {"_id": key, "promotion": pid, "slot": d["slot"], "due_at": d["due_at"], "state": "waiting"}
                for key, d in slots.items()
            ],
        )

    async def _checkpoint(self, pid: str, unit: str, last: str, counts: Tally[str], *, final: bool) -> None:
        await self.store.insert_new(
            PROGRESS,
            [
                {
                    "_id": f"{pid}:{unit}:{last or 'end'}",
                    "promotion": pid,
                    "unit": unit,
                    "last_device": last,
                    "final": final,
                    "at": datetime.now(UTC),
                    **{k: int(counts.get(k, 0)) for k in COUNTS},
                }
            ],
        )


async def campaign_stats(store: Store, promotion: Doc) -> dict[str, Any]:
    """Counts of a campaign from its checkpoints (one read), and its progress."""
    pid = promotion["_id"]
    progress = await store[PROGRESS].find({"promotion": pid}).to_list()
    audience = Audience.model_validate(promotion["audience"])
    units = units_for(audience)
    first = {k: 0 for k in COUNTS}
    later = {k: 0 for k in COUNTS}
    finished = set()
    for p in progress:
        into = first if p["unit"].startswith("b") else later
        for k in COUNTS:
            into[k] += int(p.get(k, 0))
        if p.get("final") and p["unit"].startswith("b"):
            finished.add(p["unit"])
    return {
        "promotion_id": pid,
        "state": promotion.get("fanout"),
        "targeted": first["targeted"],
        "sent": first["sent"] + later["sent"],
        "failed": first["failed"] + later["failed"],
        "pruned": first["pruned"] + later["pruned"],
        "opted_out": first["opted_out"],
        "deferred": first["deferred"],
        "deferred_sent": later["sent"],
        "deferred_waiting": max(0, first["deferred"] - later["targeted"]),
        "units_total": len(units),
        "units_done": len(finished),
        "progress": round(len(finished) / len(units), 4) if units else 1.0,
    }
