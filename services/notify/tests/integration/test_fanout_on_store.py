"""Campaign fan-out on the real store and Redis, pushing to the sandbox's app in process."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from mobi_contracts.events.notify import PromotionPublished, PromotionPublishedData
from notify_service.directory import Directory, Preferences, device_id_for
from notify_service.domain.audience import bucket_of
from notify_service.fanout import FanOut, campaign_stats, owner_key
from notify_service.promotions import store_published
from notify_service.push import Pusher
from notify_service.settings import NotifySettings
from notify_service.store import BILLING, DEFERRED_SLOTS, INDEXES, PROMOTIONS
from push_sandbox.app import PushSandbox
from servicekit.mongo import Store, Update

pytest_plugins = ["servicekit.testing"]
pytestmark = pytest.mark.integration


@pytest.fixture
async def notify_store(store: Store) -> Store:
    await store.ensure_indexes(INDEXES)
    return store


def make_fanout(store: Store, redis: Redis, sandbox: PushSandbox, chunk: int = 20) -> FanOut:
    settings = NotifySettings(push_base_url="http://sandbox", fanout_chunk=chunk, push_concurrency=16)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox))
    return FanOut(store, redis, Directory(store), Pusher(settings, http=http), settings)


def promotion(pid: str, audience: dict[str, Any]) -> PromotionPublished:
    now = datetime.now(UTC)
    return PromotionPublished.create(
        data=PromotionPublishedData(
            promotion_id=pid,
            title={"vi": "Ưu đãi", "en": "Offer"},
            body={"vi": "Nội dung", "en": "Details"},
            deep_link="mymobifone://offers",
            valid_from=now - timedelta(minutes=1),
            valid_until=now + timedelta(days=1),
            audience=audience,
        ),
        producer="tests",
        correlation_id=pid,
    )


async def add_devices(directory: Directory, numbers: list[str]) -> dict[str, str]:
    """One APNs device per number; returns number -> token."""
    tokens = {n: secrets.token_hex(32) for n in numbers}
    now = datetime.now(UTC)
    await asyncio.gather(*(directory.register(n, "apns", t, "5.0", "vi", now) for n, t in tokens.items()))
    return tokens


async def work_through(fanout: FanOut) -> None:
    """Let the running units finish, renewing the worker's liveness meanwhile (its heartbeat)."""
    while fanout.running:
        await fanout.liveness.renew()
        await asyncio.wait(list(fanout.running.values()), timeout=0.5)


async def until_done(fanout: FanOut, store: Store, pid: str, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        await fanout.tick()
        await work_through(fanout)
        doc = await store[PROMOTIONS].find_one({"_id": pid})
        if doc and doc["fanout"] == "done":
            return await campaign_stats(store, doc)
    raise AssertionError(f"{pid} not fanned out in {timeout}s")


async def end_quiet_hours(fanout: FanOut, store: Store, pid: str) -> None:
    """Makes the promotion's deferred slots due now and lets one tick push them."""
    due = {"$set": {"due_at": datetime.now(UTC) - timedelta(seconds=1)}}
    slots = await store[DEFERRED_SLOTS].find({"promotion": pid}, {"_id": 1}).to_list()
    await store.update_each(DEFERRED_SLOTS, [Update({"_id": s["_id"]}, due) for s in slots])
    await fanout.tick()
    await work_through(fanout)


def numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(count)]


async def test_only_the_audience_gets_one_push_each_honouring_opt_out_and_quiet_hours(
    notify_store: Store, redis: Redis
) -> None:
    store, sandbox = notify_store, PushSandbox()
    fanout = make_fanout(store, redis, sandbox)
    directory = fanout.directory
    prepaid, postpaid = numbers("8490", 12), numbers("8493", 5)
    tokens = await add_devices(directory, prepaid + postpaid)
    await store.insert_all(
        BILLING,
        [{"_id": n, "billing": "prepaid", "bucket": bucket_of(n)} for n in prepaid]
        + [{"_id": n, "billing": "postpaid", "bucket": bucket_of(n)} for n in postpaid],
    )
    now = datetime.now(UTC)
    opted_out, quiet = prepaid[0], prepaid[1]
    await directory.save_preferences(opted_out, Preferences(marketing_opt_out=True), now)
    local_minute = (now.hour * 60 + now.minute + 7 * 60) % 1440  # quiet from now for an hour
    await directory.save_preferences(
        quiet, Preferences(quiet_start=local_minute, quiet_end=(local_minute + 60) % 1440), now
    )

    await store_published(store, [promotion("p-audience", {"billing": "prepaid", "prefixes": ["090"]})])
    stats = await until_done(fanout, store, "p-audience")

    expected = set(prepaid) - {opted_out, quiet}
    assert {n for n, t in tokens.items() if sandbox.state.deliveries[t]} == expected
    assert all(sandbox.state.deliveries[tokens[n]] == 1 for n in expected)
    assert stats | {"units_total": 0, "units_done": 0} == stats | {
        "targeted": 12, "sent": 10, "opted_out": 1, "deferred": 1, "failed": 0, "pruned": 0,
        "units_total": 0, "units_done": 0, "progress": 1.0, "state": "done",
    }  # fmt: skip

    # The quiet hours end: the deferred push goes out once, and only then.
    await end_quiet_hours(fanout, store, "p-audience")
    await fanout.tick()
    assert sandbox.state.deliveries[tokens[quiet]] == 1
    doc = await store[PROMOTIONS].find_one({"_id": "p-audience"})
    after = await campaign_stats(store, doc or {})
    assert (after["deferred_sent"], after["deferred_waiting"]) == (1, 0)


async def test_a_deferred_push_is_held_back_when_the_subscriber_opts_out_while_it_waits(
    notify_store: Store, redis: Redis
) -> None:
    store, sandbox = notify_store, PushSandbox()
    fanout = make_fanout(store, redis, sandbox)
    directory = fanout.directory
    targets = numbers("8471", 2)
    tokens = await add_devices(directory, targets)
    now = datetime.now(UTC)
    local_minute = (now.hour * 60 + now.minute + 7 * 60) % 1440  # quiet from now for an hour
    quiet_hours = Preferences(quiet_start=local_minute, quiet_end=(local_minute + 60) % 1440)
    for n in targets:
        await directory.save_preferences(n, quiet_hours, now)
    await store_published(store, [promotion("p-later-opt-out", {"msisdns": targets})])
    stats = await until_done(fanout, store, "p-later-opt-out")
    assert (stats["sent"], stats["deferred"]) == (0, 2)

    changed_mind = Preferences(
        marketing_opt_out=True, quiet_start=quiet_hours.quiet_start, quiet_end=quiet_hours.quiet_end
    )
    await directory.save_preferences(targets[0], changed_mind, now)
    await end_quiet_hours(fanout, store, "p-later-opt-out")
    delivered = sandbox.state.deliveries
    assert (delivered[tokens[targets[0]]], delivered[tokens[targets[1]]]) == (0, 1)


async def test_unregistered_tokens_are_pruned_during_a_campaign(notify_store: Store, redis: Redis) -> None:
    store, sandbox = notify_store, PushSandbox()
    fanout = make_fanout(store, redis, sandbox)
    targets = numbers("8470", 4)
    tokens = await add_devices(fanout.directory, targets)
    sandbox.state.unregistered.add(tokens[targets[0]])
    await store_published(store, [promotion("p-prune", {"msisdns": targets})])
    stats = await until_done(fanout, store, "p-prune")
    assert (stats["sent"], stats["pruned"]) == (3, 1)
    assert await fanout.directory.devices_of(targets[0]) == []
    assert len(await fanout.directory.devices_of(targets[1])) == 1


async def test_a_replica_that_dies_mid_campaign_is_taken_over_without_missing_a_device(
    notify_store: Store, redis: Redis
) -> None:
    store, sandbox = notify_store, PushSandbox()
    sandbox.state.faults.delay_ms = 20  # slow enough to die in the middle
    first = make_fanout(store, redis, sandbox, chunk=10)
    targets = numbers("8489", 120)
    tokens = await add_devices(first.directory, targets)
    await store_published(store, [promotion("p-crash", {"msisdns": targets})])

    await first.tick()
    while sum(sandbox.state.deliveries.values()) < 30:
        await asyncio.sleep(0.01)
    await first.stop()  # the process dies: nothing after this point runs
    await redis.delete(owner_key(first.owner))  # its liveness key expires
    delivered_before = sum(sandbox.state.deliveries.values())
    assert delivered_before < len(targets)

    second = make_fanout(store, redis, sandbox, chunk=10)
    stats = await until_done(second, store, "p-crash")
    counts = [sandbox.state.deliveries[tokens[n]] for n in targets]
    assert min(counts) == 1, "a device was missed"
    # Only the chunks in flight when it died can be pushed twice (at most one chunk per unit
    # being worked, 4 units at once), and the phone shows them once (collapse id).
    assert sum(counts) - len(targets) <= 4 * 10
    assert stats["targeted"] >= len(targets)
    print(f"re-sent after the crash: {sum(counts) - len(targets)} of {len(targets)}")


class StallingPusher:
    """The pusher of a worker whose process stalls (a long GC pause, a frozen VM, SIGSTOP)
    while its `stall_at`-th chunk is in flight: the chunk goes out only when it wakes up."""

    def __init__(self, pusher: Pusher, stall_at: int) -> None:
        self.pusher = pusher
        self.stall_at = stall_at
        self.calls = 0
        self.stalled = asyncio.Event()
        self.wake = asyncio.Event()

    async def send_all(self, pushes: list[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == self.stall_at:
            self.stalled.set()
            await self.wake.wait()
        return await self.pusher.send_all(pushes)


def numbers_in_one_bucket(count: int, bucket: int = 7) -> list[str]:
    found, n = [], 0
    while len(found) < count:
        number = f"8478{n:07d}"
        if bucket_of(number) == bucket:
            found.append(number)
        n += 1
    return found


async def test_a_stalled_worker_whose_unit_was_taken_over_stops_at_its_next_chunk(
    notify_store: Store, redis: Redis
) -> None:
    store, sandbox = notify_store, PushSandbox()
    stalling = make_fanout(store, redis, sandbox, chunk=10)
    stall = StallingPusher(stalling.pusher, stall_at=3)
    stalling.pusher = stall  # type: ignore[assignment]
    targets = numbers_in_one_bucket(120)  # one unit of 12 chunks
    tokens = await add_devices(stalling.directory, targets)
    await store_published(store, [promotion("p-stall", {"msisdns": targets})])

    await stalling.tick()
    await stall.stalled.wait()  # chunks 1-2 pushed and checkpointed, chunk 3 in flight: it stalls
    await redis.delete(owner_key(stalling.owner))  # its liveness key outlived meanwhile
    other = make_fanout(store, redis, sandbox, chunk=10)
    await until_done(other, store, "p-stall")  # takes the unit over from the last checkpoint
    stall.wake.set()  # the stalled worker wakes up
    await asyncio.gather(*stalling.running.values())

    order = sorted(targets, key=lambda n: device_id_for("apns", tokens[n]))  # the unit's order
    counts = [sandbox.state.deliveries[tokens[n]] for n in order]
    assert min(counts) == 1, "a device was missed"
    assert counts[20:30] == [2] * 10, "only the chunk in flight at the stall went out twice"
    assert counts[:20] == [1] * 20 and counts[30:] == [1] * 90, "the woken worker pushed no further chunk"
