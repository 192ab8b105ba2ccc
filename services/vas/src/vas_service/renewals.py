"""The renewal pass: notices before renewals, then the charges of the renewals that are due.

Schedule entries are found by the minute they fall due (`due_minute`, an index equality the
store serves), from the minute after the last pass to now; each pass remembers how far it got.
A chunk of due entries is one use case (see inflight.py): its marker, then the claim (ONE
unordered `insert_many` of its slots: a duplicate key is a period already charged, skipped or
stopped, so a pass, a replay or a second replica never charges a period twice), then its
completion: the charges published under their tickets, the cap refusals recorded, the next
periods scheduled (ONE `insert_many`). A pass that fails after its claims (Kafka down, a crash)
leaves the marker, and the resume pass completes the chunk: no renewal ends silently. The
monthly cap of the few capped subscribers among them is decided first, like money (budget.py).

`now` is injectable (the internal route and the CLI take it), so a test runs months of
renewals in seconds; a pass for one subscriber (`msisdn`) leaves the others and the
watermark alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Histogram

from mobi_contracts import AnyEvent
from mobi_contracts.events.vas import VasRenewalDue, VasRenewalDueData
from servicekit.buckets import hour_of, minute_of
from servicekit.mongo import Doc

from .answers import failure
from .chains import Chains
from .charging import PRODUCER
from .domain.slots import slot_claim
from .domain.subscriptions import charge_id, event_id_for
from .store import CHARGES, CONSENTS, RUNS, SCHEDULE

log = logging.getLogger(__name__)
RENEWALS = Counter("vas_renewals_total", "Renewal decisions, by outcome", ["service", "outcome"])
PASS_SECONDS = Histogram(
    "vas_renewal_pass_seconds",
    "Duration of one renewal pass",
    ["service"],
    buckets=(0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
WATERMARK = "watermark"
Stats = dict[str, int]


class Renewals:
    def __init__(
        self, chains: Chains, *, service: str, chunk: int = 2000, lookback: timedelta = timedelta(minutes=10)
    ) -> None:
        self.c = chains
        self.store = chains.store
        self.service = service
        self.chunk = chunk
        self.lookback = lookback

    async def run_once(self, now: datetime | None = None, msisdn: str | None = None) -> dict[str, int]:
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        stats: Stats = defaultdict(int)
        if msisdn:
            await self._for_subscriber(now, msisdn, stats)
        else:
            await self._everyone(now, stats)
        seconds = time.perf_counter() - started
        PASS_SECONDS.labels(self.service).observe(seconds)
        if stats:
            log.info("renewal pass", extra={**stats, "msisdn": msisdn, "s": round(seconds, 2)})
        return dict(stats)

    # -- which entries --------------------------------------------------------------------------

    async def _everyone(self, now: datetime, stats: Stats) -> None:
        mark = await self.store[RUNS].find_one({"_id": WATERMARK})
        first = mark["minute_at"] + timedelta(minutes=1) if mark else now - self.lookback
        first = first.replace(second=0, microsecond=0)
        capped = await self.c.guards.capped()
        moment = first
        while moment <= now:
            minute = minute_of(moment)
            notices = await self.store[SCHEDULE].find({"notice_minute": minute}).to_list()
            await self._notify(
                await self._undecided([e for e in notices if e["notice_at"] <= now < e["due_at"]]), now, stats
            )
            # Reading the next chunk overlaps with claiming the last (at most two at a time).
            cursor = self.store[SCHEDULE].find({"due_minute": minute}).batch_size(self.chunk)
            batch: list[Doc] = []
            running: set[asyncio.Task[None]] = set()
            async for entry in cursor:
                if entry["due_at"] <= now:
                    batch.append(entry)
                if len(batch) >= self.chunk:
                    if len(running) >= 2:
                        finished, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        for task in finished:
                            task.result()
                    running.add(asyncio.create_task(self._renew(batch, now, capped, stats)))
                    batch = []
            await asyncio.gather(*running, self._renew(batch, now, capped, stats))
            moment += timedelta(minutes=1)
        # The current minute is scanned again next time (entries due later in it).
        done = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
        await self.store[RUNS].update_one({"_id": WATERMARK}, {"$set": {"minute_at": done}}, upsert=True)

    async def _for_subscriber(self, now: datetime, msisdn: str, stats: Stats) -> None:
        capped = await self.c.guards.capped(msisdn)
        for _ in range(1000):  # a pass far ahead renews period after period
            entries = await self._next_entries(msisdn)
            await self._notify([e for e in entries if e["notice_at"] <= now < e["due_at"]], now, stats)
            due = [e for e in entries if e["due_at"] <= now]
            if not due:
                return
            await self._renew(due, now, capped, stats)

    async def _next_entries(self, msisdn: str) -> list[Doc]:
        """The next schedule entry of each of the subscriber's live chains (read by subscription)."""
        subs = await self.c.views.subscriptions(msisdn, None)
        stopped = {f["subscription_id"] for f in await self.c.log.facts(msisdn) if f["action"] == "cancelled"}
        live = [s["_id"] for s in subs if s["_id"] not in stopped]
        newest = await self.store.bounded_all(self.c.newest(sid) for sid in live)
        ids = [charge_id(sid, int(n[0]["period"]) + 1) for sid, n in zip(live, newest, strict=True) if n]
        return list((await self.store.find_by_ids(SCHEDULE, ids)).values())

    async def _undecided(self, entries: list[Doc]) -> list[Doc]:
        """Entries whose slot nobody has decided (no notice for a period already stopped)."""
        if not entries:
            return []
        decided = await self.store.find_by_ids(CHARGES, [e["_id"] for e in entries])
        return [e for e in entries if e["_id"] not in decided]

    # -- notices --------------------------------------------------------------------------------

    async def _notify(self, entries: list[Doc], now: datetime, stats: Stats) -> None:
        """`VasRenewalDue` for each entry, named by the entry: a minute scanned twice sends the
        same events again, which consumers recognise."""
        if not entries:
            return
        events: list[AnyEvent] = []
        logged: list[Doc] = []
        for entry in entries:
            t = entry["template"]
            events.append(
                VasRenewalDue.new(
                    subject=entry["msisdn"],
                    producer=PRODUCER,
                    correlation_id=f"renewal-{entry['_id']}",
                    event_id=event_id_for(entry["_id"], "notice"),
                    data=VasRenewalDueData(
                        subscription_id=entry["subscription_id"],
                        code=t["code"],
                        name=t["name"][:100],
                        period=entry["period"],
                        amount_vnd=t["price_vnd"],
                        due_at=entry["due_at"],
                    ),
                )
            )
            logged.append(
                {
                    "_id": f"{entry['_id']}:notice",
                    "msisdn": entry["msisdn"],
                    "subscription_id": entry["subscription_id"],
                    "code": t["code"],
                    "action": "renewal_notice",
                    "channel": "system",
                    "period": entry["period"],
                    "amount_vnd": t["price_vnd"],
                    "at": now,
                    "hour": hour_of(datetime.now(UTC)),
                }
            )
        await self.c.desk.publisher.publish(self.c.topic.name, events)
        stats["notices"] += await self.store.insert_new(CONSENTS, logged)

    # -- charges --------------------------------------------------------------------------------

    async def _renew(self, entries: list[Doc], now: datetime, capped: dict[str, Doc], stats: Stats) -> None:
        """A chunk of due renewals: marker, claim, completion (see the module docstring)."""
        if not entries:
            return
        batch = uuid.uuid4().hex
        marker = f"renewals:{batch}"
        await self.c.inflight.open(marker, "renewals", batch=batch)
        allowed, over = await self._split_by_cap(entries, now, capped)
        slots = [
            *(
                slot_claim(e["template"], e["period"], now, f"renewal-{e['_id']}", "requested", batch)
                for e in allowed
            ),
            *(slot_claim(e["template"], e["period"], now, "", "cap_reached", batch) for e in over),
        ]
        decided = await self.c.desk.claim(slots)
        new_ids = {s["_id"] for s in decided}
        for entry in allowed:
            if entry["_id"] not in new_ids and entry["msisdn"] in capped:  # decided before: give it back
                await self.c.budget.release(entry["msisdn"], entry["_id"])
        sent = await self._complete(decided, {e["_id"]: e for e in entries})
        await self.c.inflight.close(marker)
        requested = sum(1 for s in decided if s["state"] == "requested")
        stats["charged"] += sent
        stats["over_cap"] += len(decided) - requested
        stats["already_decided"] += len(entries) - len(decided)
        RENEWALS.labels(self.service, "requested").inc(sent)
        RENEWALS.labels(self.service, "over_cap").inc(len(decided) - requested)

    async def complete_batch(self, marker: Doc) -> None:
        """The resume pass: complete a chunk whose pass stopped after its claims."""
        slots = await self.store[CHARGES].find({"batch": marker["batch"]}).to_list()
        entries = await self.store.find_by_ids(SCHEDULE, [s["_id"] for s in slots])
        await self._complete(slots, entries)

    async def _complete(self, slots: Sequence[Doc], entries: dict[str, Doc]) -> int:
        """Publish the chunk's charges, record its cap refusals, schedule the following periods."""
        sent = await self.c.desk.send([s for s in slots if s["state"] == "requested"])
        await self._report_cap([s for s in slots if s["state"] == "cap_reached"])
        following = []
        for slot in slots:
            entry = entries.get(slot["_id"])
            if (
                entry is not None
                and slot["state"] in ("requested", "cap_reached")
                and entry["template"].get("auto_renew", True)
            ):
                following.append(self.c.entry(entry["template"], int(slot["period"]) + 1))
        await self.store.insert_new(SCHEDULE, following)
        return len(sent)

    async def _split_by_cap(
        self, entries: list[Doc], now: datetime, capped: dict[str, Doc]
    ) -> tuple[list[Doc], list[Doc]]:
        """Reserve the cap of capped subscribers' renewals, one subscriber's after another."""
        if not capped or not any(e["msisdn"] in capped for e in entries):
            return entries, []
        mine: dict[str, list[Doc]] = defaultdict(list)
        for entry in entries:
            if entry["msisdn"] in capped:
                mine[entry["msisdn"]].append(entry)

        async def decide(number: str) -> list[Doc]:
            since = await self.c.views.tenancy(number)
            cap = capped[number].get("monthly_cap_vnd")
            refused = []
            for entry in mine[number]:
                price = int(entry["template"]["price_vnd"])
                if cap is not None and not await self.c.budget.reserve(
                    number, since, cap, entry["_id"], price, now
                ):
                    refused.append(entry)
            return refused

        over = [e for refused in await self.store.bounded_all(decide(n) for n in mine) for e in refused]
        over_ids = {e["_id"] for e in over}
        return [e for e in entries if e["_id"] not in over_ids], over

    async def _report_cap(self, refused: list[Doc]) -> None:
        if not refused:
            return
        hour = hour_of(datetime.now(UTC))  # real time, as every consent entry
        failures = [
            failure(
                claim,
                "monthly_cap_reached",
                claim["at"],
                hour,
                {
                    "subject": claim["msisdn"],
                    "producer": PRODUCER,
                    "correlation_id": f"renewal-{claim['_id']}",
                },
            )
            for claim in refused
        ]
        await self.store.insert_new(CONSENTS, [entry for entry, _ in failures])
        await self.c.desk.publisher.publish(self.c.topic.name, [event for _, event in failures])
