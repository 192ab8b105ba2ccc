"""The renewal pass: notices before renewals, then the charges of the renewals that are due.

Schedule entries are found by the minute they fall due (`due_minute`, an index equality the
store serves), from the minute after the last pass to now; each pass remembers how far it got.
For a chunk of due entries the pass makes a bounded number of store calls whatever its size:
the monthly cap of the few capped subscribers among them, ONE unordered `insert_many` of the
charge claims (a duplicate key is a period already charged, skipped or cancelled: it is
skipped, so a pass, a replay or a second replica never charges a period twice), ONE
`insert_many` of the next schedule entries, the cancellations made meanwhile, and the charge
requests published together. Nothing is rewritten.

`now` is injectable (the internal route and the CLI take it), so a test runs months of
renewals in seconds; a pass for one subscriber (`msisdn`) leaves the others and the
watermark alone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.vas import VasRenewalDue, VasRenewalDueData
from servicekit.buckets import hour_of, minute_of
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Doc, Store

from .charging import PRODUCER, ChargeDesk, charge_claim, failure, insert_claims
from .domain.subscriptions import event_id_for, within_cap
from .store import CHARGES, CONSENTS, GUARDS, RUNS, SCHEDULE
from .subscriptions import VasService

log = logging.getLogger(__name__)
RENEWALS = Counter("vas_renewals_total", "Renewal decisions, by outcome", ["service", "outcome"])
PASS_SECONDS = Histogram(
    "vas_renewal_pass_seconds",
    "Duration of one renewal pass",
    ["service"],
    buckets=(0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
WATERMARK = "watermark"


class Renewals:
    def __init__(
        self,
        *,
        store: Store,
        desk: ChargeDesk,
        vas: VasService,
        publisher: EventPublisher,
        topic: Topic,
        service: str,
        chunk: int = 2000,
        lookback: timedelta = timedelta(minutes=10),
    ) -> None:
        self.store = store
        self.desk = desk
        self.vas = vas
        self.publisher = publisher
        self.topic = topic
        self.service = service
        self.chunk = chunk
        self.lookback = lookback

    async def run_once(self, now: datetime | None = None, msisdn: str | None = None) -> dict[str, int]:
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        stats: dict[str, int] = defaultdict(int)
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

    async def _everyone(self, now: datetime, stats: dict[str, int]) -> None:
        mark = await self.store[RUNS].find_one({"_id": WATERMARK})
        first = mark["minute_at"] + timedelta(minutes=1) if mark else now - self.lookback
        first = first.replace(second=0, microsecond=0)
        capped = await self._capped()
        moment = first
        while moment <= now:
            minute = minute_of(moment)
            notices = await self.store[SCHEDULE].find({"notice_minute": minute}).to_list()
            await self._notify([e for e in notices if e["notice_at"] <= now < e["due_at"]], now, stats)
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

    async def _for_subscriber(self, now: datetime, msisdn: str, stats: dict[str, int]) -> None:
        capped = await self._capped(msisdn)
        for _ in range(1000):  # a pass far ahead renews period after period
            entries = await self.store[SCHEDULE].find({"msisdn": msisdn}).to_list()
            claimed = {
                c["_id"] for c in await self.store[CHARGES].find({"msisdn": msisdn}, {"_id": 1}).to_list()
            }
            open_entries = [e for e in entries if e["_id"] not in claimed]
            await self._notify([e for e in open_entries if e["notice_at"] <= now < e["due_at"]], now, stats)
            due = [e for e in open_entries if e["due_at"] <= now]
            if not due:
                return
            await self._renew(due, now, capped, stats)

    async def _capped(self, msisdn: str | None = None) -> dict[str, Doc]:
        query: dict[str, Any] = {"has_cap": True}
        if msisdn:
            query["_id"] = msisdn
        return {g["_id"]: g for g in await self.store[GUARDS].find(query).to_list()}

    # -- notices --------------------------------------------------------------------------------

    async def _notify(self, entries: list[Doc], now: datetime, stats: dict[str, int]) -> None:
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
        await self.publisher.publish(self.topic.name, events)
        stats["notices"] += await self.store.insert_new(CONSENTS, logged)

    # -- charges --------------------------------------------------------------------------------

    async def _renew(
        self, entries: list[Doc], now: datetime, capped: dict[str, Doc], stats: dict[str, int]
    ) -> None:
        if not entries:
            return
        since = datetime.now(UTC)
        allowed, over_cap = await self._split_by_cap(entries, now, capped)
        requested = [
            charge_claim(e["template"], e["period"], now, f"renewal-{e['_id']}", self.topic) for e in allowed
        ]
        sent = await self.desk.request(requested, since=since)
        refused = await insert_claims(
            self.store,
            CHARGES,
            [charge_claim(e["template"], e["period"], now, "", self.topic, "cap_reached") for e in over_cap],
        )
        await self._report_cap(refused, now)
        # The next period of each renewal decided here (a later pass, the subscriber's skip or
        # a cancellation claim it in turn).
        by_id = {e["_id"]: e for e in entries}
        following = [by_id[c["_id"]] for c in (*sent, *refused)]
        next_entries = [
            self.vas.schedule_entry(e["template"], e["period"] + 1)
            for e in following
            if e["template"].get("auto_renew", True)
        ]
        await self.store.insert_new(SCHEDULE, next_entries)
        stats["charged"] += len(sent)
        stats["over_cap"] += len(refused)
        stats["already_decided"] += len(entries) - len(sent) - len(refused)
        RENEWALS.labels(self.service, "requested").inc(len(sent))
        RENEWALS.labels(self.service, "over_cap").inc(len(refused))

    async def _split_by_cap(
        self, entries: list[Doc], now: datetime, capped: dict[str, Doc]
    ) -> tuple[list[Doc], list[Doc]]:
        if not capped or not any(e["msisdn"] in capped for e in entries):
            return entries, []
        numbers = {e["msisdn"] for e in entries if e["msisdn"] in capped}
        spent = dict(
            zip(
                numbers,
                await self.store.bounded_all(self.vas.month_spend(n, now) for n in numbers),
                strict=True,
            )
        )
        allowed, over = [], []
        for entry in entries:
            number, price = entry["msisdn"], entry["template"]["price_vnd"]
            if number in capped and not within_cap(capped[number], spent[number], price):
                over.append(entry)
                continue
            spent[number] = spent.get(number, 0) + price
            allowed.append(entry)
        return allowed, over

    async def _report_cap(self, refused: list[Doc], now: datetime) -> None:
        if not refused:
            return
        hour = hour_of(datetime.now(UTC))  # real time, as every consent entry
        failures = [
            failure(
                claim,
                "monthly_cap_reached",
                now,
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
        await self.publisher.publish(self.topic.name, [event for _, event in failures])


def run() -> None:
    """`vas-renewals [--now ISO] [--msisdn 84...]`: one renewal pass by hand (under the same
    lease as the service's own passes)."""
    from .main import create_service

    parser = argparse.ArgumentParser(description=run.__doc__)
    parser.add_argument("--now", type=datetime.fromisoformat, default=None)
    parser.add_argument("--msisdn", default=None)
    args = parser.parse_args()
    service = create_service()

    async def once() -> None:
        from servicekit.logs import configure_logging

        configure_logging("vas-renewals", service.settings.log_level)
        await service.store.connect()
        await service.publisher.start()
        try:
            job = service.app.state.renewal_job
            renewals: Renewals = service.app.state.renewals
            stats = await job.run_once(lambda: renewals.run_once(args.now, args.msisdn))
            print("another replica holds the lease; try again" if stats is None else stats)
        finally:
            await service.publisher.stop()
            await service.broker.stop()
            await service.redis.aclose()
            await service.store.close()

    asyncio.run(once())
