"""Campaign fan-out: every targeted device gets one push, across crashes and replicas.

A campaign is cut into units: the devices of one bucket (`b017`), and later the devices
deferred to one quiet-hours end (`d2026-11-27T00:00`). Store cost per unit, not per device:

- claim: a unit is taken by inserting `promotion:unit:generation` (unique `_id`; many units
  in one `insert_many`), so two replicas never work the same unit;
- work: one indexed read of the bucket's devices (in `_id` order), of its preferences and
  of each attribute the audience needs; the audience is decided in memory;
- checkpoint: after each chunk of devices is pushed, one insert records the last device
  id and the counts. A unit resumes after its last checkpoint; the last one is `final`.

A process keeps a liveness key in Redis, renewed by a heartbeat of its own (units.py); a
unit whose claimer's key has expired (the process died, or stalled longer than the key lives)
is claimed again with the next generation and resumes. A claimer is fenced before each chunk
(its key never lapsed, no later generation was claimed), so a stalled worker that wakes up
stops at its next chunk: a unit is pushed by one worker at a time, except for the chunk in
flight when the stall began (as for a crash, the phone shows it once).

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

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from mobi_contracts.events.notify import Audience
from servicekit.mongo import Doc, Store

from .directory import Directory, Preferences, current_only, language_of
from .domain.audience import Attributes, matches, needs, units_for
from .domain.quiet import in_quiet_hours, quiet_ends
from .push import Outcome, Push, Pusher
from .settings import NotifySettings
from .stats import COUNTS, campaign_stats
from .store import CLAIMS, DEFERRED, DEFERRED_SLOTS, PROGRESS, PROMOTIONS
from .units import Draining, Fence, Liveness, LostUnit, owner_key

__all__ = ["Draining", "FanOut", "LostUnit", "campaign_stats", "owner_key", "promotion_push"]

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
NO_ATTRIBUTES = Attributes()
UNITS_AT_ONCE = 8  # units of one campaign pushed concurrently (keeps the HTTP/2 streams busy)
CLAIM_SLICE = 32


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
        self.liveness = Liveness(redis, self.owner, settings.fanout_owner_ttl_seconds)

    # -- the loop ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        # The heartbeat outlives this loop until `stop`: a draining unit stays owned.
        self.liveness.start()
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
        await self.liveness.stop()

    async def tick(self) -> None:
        if self.draining:
            return
        await self.liveness.renew()
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
            except LostUnit:
                log.warning("fan-out units taken over by another worker", extra={"unit": key})
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

        async def bucket_unit(unit: str, after: str | None, fence: Fence) -> dict[str, int]:
            bucket = int(unit[1:])
            devices = await self.directory.devices_in_bucket(bucket)
            # A phone a recycled number's previous owner registered is not the number's.
            devices = current_only(devices, await self.directory.tenancies_in_bucket(bucket))
            attrs = await self.directory.attributes_in_bucket(bucket, wanted) if wanted else {}
            prefs = await self.directory.preferences_in_bucket(bucket)
            return await self._push_unit(
                promotion,
                unit,
                [d for d in devices if after is None or d["_id"] > after],
                lambda d: matches(audience, d["msisdn"], attrs.get(d["msisdn"], NO_ATTRIBUTES), numbers),
                prefs,
                fence,
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

        async def deferred_unit(_: str, after: str | None, fence: Fence) -> dict[str, int]:
            docs = await self.store[DEFERRED].find({"slot_key": slot["_id"]}).to_list()
            docs.sort(key=lambda d: d["_id"])
            numbers = sorted({d["msisdn"] for d in docs})
            devices = [
                {**d["device"], "_id": d["device_id"], "msisdn": d["msisdn"]}
                for d in docs
                if after is None or d["device_id"] > after
            ]
            # The number changed hands while the push waited: not to the previous owner's phone.
            devices = current_only(devices, await self.directory.tenancies_of(numbers))
            # An opt-out made while the push waited holds it back too.
            current = await self.directory.preferences_of(numbers)
            prefs = {
                d["msisdn"]: Preferences(
                    marketing_opt_out=current.get(d["msisdn"], Preferences()).marketing_opt_out,
                    language=d.get("language"),
                )
                for d in docs
            }
            return await self._push_unit(
                promotion or {}, unit, devices, lambda _: True, prefs, fence, defer=False
            )

        live = promotion is not None and promotion["valid_until"] > datetime.now(UTC)
        if live and unit not in await self._work_units(pid, [unit], deferred_unit):
            return  # held by another live replica, or not finished: the next tick looks again
        await self.store[DEFERRED_SLOTS].update_one({"_id": slot["_id"]}, {"$set": {"state": "done"}})

    async def _work_units(
        self, pid: str, units: list[str], work: Callable[[str, str | None, Fence], Awaitable[dict[str, int]]]
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
        alive = await self.liveness.alive_among(owners)
        # This process's own older claims are not in progress (one campaign task per promotion).
        todo = [
            (u, latest.get(u, (0, ""))[0] + 1)
            for u in units
            if u not in finished and latest.get(u, (0, ""))[1] not in alive
        ]
        epoch = self.liveness.epoch  # before claiming: a lapse after it loses these claims
        claimed = await self._claim(pid, todo)
        if len(claimed) < len(todo):
            log.info(
                "units held by live replicas", extra={"promotion": pid, "held": len(todo) - len(claimed)}
            )
        gate = asyncio.Semaphore(UNITS_AT_ONCE)

        async def one(unit: str, gen: int) -> None:
            async with gate:
                if self.draining:
                    raise Draining
                try:
                    fence = Fence(self.liveness, self.store, lambda: self.draining, (pid, unit, gen), epoch)
                    await work(unit, resume.get(unit), fence)
                except LostUnit:
                    log.warning("fan-out unit taken over", extra={"promotion": pid, "unit": unit})
                    return  # its new claimer finishes it
                finished.add(unit)
                FANOUT_UNITS.labels(self.service).inc()

        # Every unit comes to its end (a checkpoint) before a failure is raised: no unit is
        # left pushing behind a campaign task that has already returned.
        results = await asyncio.gather(*(one(u, g) for u, g in claimed), return_exceptions=True)
        for failure in results:
            if isinstance(failure, BaseException):
                raise failure
        return finished

    async def _claim(self, pid: str, todo: list[tuple[str, int]]) -> list[tuple[str, int]]:
        claimed: list[tuple[str, int]] = []
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
            claimed.extend((doc["unit"], doc["gen"]) for doc in await self.store.insert_fresh(CLAIMS, docs))
        return claimed

    async def _push_unit(
        self,
        promotion: Doc,
        unit: str,
        devices: list[Doc],
        targeted: Callable[[Doc], bool],
        prefs: dict[str, Preferences],
        fence: Fence,
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
            await fence.check()  # still this worker's unit, and not stopping
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
        kept = ("platform", "token", "locale", "owner_since", "registered_at")  # the tenancy too
        slot = due.strftime("%Y-%m-%dT%H:%M")
        return {
            "_id": f"{pid}:{device['_id']}",
            "slot_key": f"{pid}:{slot}",
            "slot": slot,
            "due_at": due,
            "device_id": device["_id"],
            "msisdn": device["msisdn"],
            "language": language_of(prefs, device.get("locale")),
            "device": {k: device.get(k) for k in kept},
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
