"""The points ledger is the truth, wallets are lazy snapshots, on the real store: a restart
with snapshots behind the ledger decides on the ledger's state (no double earn, no lost
spend); two processes earning for one member never both take a seq; snapshots are written
within a budget per batch, the most behind first, and catch up; nothing goes below zero."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

import pytest

from loyalty_service.domain.snapshots import SnapshotPolicy
from loyalty_service.domain.wallet import Refused
from loyalty_service.ledger import Contended, PointsLedger, current_wallet
from loyalty_service.programme import Programme
from loyalty_service.store import INDEXES, LEDGER, WALLETS
from mobi_contracts import Topic
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import topup_recorded

from .conftest import make_programme

pytestmark = pytest.mark.integration
A, B = "84770000031", "84770000032"
NEVER = SnapshotPolicy(every=10**6, seconds=10**6, budget=50)  # the batch path writes none


@pytest.fixture(autouse=True)
async def indexed(store: Store) -> None:
    await store.ensure_indexes(INDEXES)  # the unique (member, seq) above all


def process(store: Store, publisher: EventPublisher, topic: Topic, policy: SnapshotPolicy) -> Programme:
    """A loyalty process of its own: its own memory of members and its own locks."""
    ledger = PointsLedger(store, publisher, "tests", topic, snapshots=policy)
    return make_programme(store, ledger, welcome_points=1000, transfers={"daily_max": 10**9})


async def snapshot(store: Store, msisdn: str) -> dict[str, Any]:
    doc = await store[WALLETS].find_one({"_id": msisdn})
    assert doc is not None
    return doc


async def chain(store: Store, msisdn: str) -> list[dict[str, Any]]:
    """The member's entries in seq order, checked to be 1..n without a gap or a duplicate."""
    entries = sorted(await store[LEDGER].find({"member": msisdn}).to_list(), key=lambda e: e["seq"])
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1)), "a gap or a duplicate"
    return entries


async def balance(store: Store, msisdn: str) -> int:
    wallet = await current_wallet(store, msisdn)
    assert wallet is not None
    return wallet.points


async def test_a_restart_with_lagging_snapshots_decides_on_the_ledger_no_double_earn_no_lost_spend(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    first = process(store, publisher, topic, NEVER)
    for m in (A, B):
        await first.enroll(m, "t")
    earnings = [topup_recorded(A, 100_000, f"T-lag-{i}") for i in range(3)]
    await first.earn_from(earnings)
    assert (await snapshot(store, A))["points"] == 1000  # the batch wrote no snapshot
    await first.transfer(A, B, 1200, "spend-all-but-100", "t")
    # A crash right after the transfer's entry: its snapshot still has the 1300 points.
    before_spend = await store[LEDGER].find_one({"member": A, "_id": "earn:topup:T-lag-2"})
    assert before_spend is not None
    await store[WALLETS].update_one({"_id": A}, {"$set": before_spend["state_after"]})
    assert (await snapshot(store, A))["points"] == 1300

    restarted = process(store, publisher, topic, NEVER)  # nothing in memory
    applied = await restarted.earn_from([*earnings, topup_recorded(A, 100_000, "T-lag-new")])
    assert [d["_id"] for d in applied] == [f"earn:topup:{e.data.topup_id}" for e in earnings] + [
        "earn:topup:T-lag-new"
    ]
    assert await balance(store, A) == 100 + 100  # the replays earned nothing, the spend stands
    with pytest.raises(Refused) as refused:
        await restarted.transfer(A, B, 1000, "on-the-stale-snapshot", "t")
    assert refused.value.code == "insufficient_points"
    entries = await chain(store, A)
    assert sum(e["delta"] for e in entries) == 200
    assert [e["kind"] for e in entries].count("earn") == 4


async def test_two_processes_earning_for_one_member_never_both_take_a_seq(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    one = process(store, publisher, topic, SnapshotPolicy(every=3, seconds=10**6, budget=5))
    two = process(store, publisher, topic, SnapshotPolicy(every=3, seconds=10**6, budget=5))
    await one.enroll(A, "t")
    for p, name in ((one, "warm-1"), (two, "warm-2")):  # both remember A's state
        await p.earn_from([topup_recorded(A, 10_000, name)])

    async def earn(round_no: int, p: Programme) -> None:
        tag = "one" if p is one else "two"
        await p.earn_from([topup_recorded(A, 10_000, f"T-{tag}-{round_no}-{i}") for i in range(3)])

    await asyncio.gather(*(earn(r, p) for r in range(8) for p in (one, two)))
    entries = await chain(store, A)
    earned = [e for e in entries if e["kind"] == "earn"]
    assert len(earned) == 2 + 8 * 2 * 3 and len({e["_id"] for e in earned}) == len(earned)
    assert await balance(store, A) == 1000 + 10 * len(earned) == sum(e["delta"] for e in entries)
    for before, e in pairwise(entries):  # each decided on the one before it
        assert e["balance_after"] == before["balance_after"] + e["delta"]


async def test_snapshots_are_written_within_the_budget_most_behind_first_and_catch_up(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    p = process(store, publisher, topic, SnapshotPolicy(every=2, seconds=10**6, budget=2))
    members = [f"8477000010{i}" for i in range(6)]
    for m in members:
        await p.enroll(m, "t")  # a request: its snapshot written at once (seq 1)
    # Member i earns i+1 times: 1..5 entries behind.
    await p.earn_from(
        [
            topup_recorded(m, 10_000, f"T-snap-{i}-{k}")
            for i, m in enumerate(members[:5])
            for k in range(i + 1)
        ]
    )
    seqs = [(await snapshot(store, m))["seq"] for m in members]
    assert seqs == [1, 1, 1, 5, 6, 1]  # the two most behind, the rest as they were
    await p.earn_from([topup_recorded(members[5], 10_000, "T-snap-other")])  # a batch of someone else
    seqs = [(await snapshot(store, m))["seq"] for m in members]
    assert seqs == [1, 3, 4, 5, 6, 1]  # the next two caught up; 1 behind is not due
    assert [await balance(store, m) for m in members] == [1010, 1020, 1030, 1040, 1050, 1010]  # the ledger's
    for m in members:
        entries = await chain(store, m)
        assert (await current_wallet(store, m)).seq == entries[-1]["seq"]  # type: ignore[union-attr]


async def test_concurrent_spends_and_earnings_on_lagging_snapshots_never_go_below_zero(
    store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    one = process(store, publisher, topic, NEVER)
    two = process(store, publisher, topic, NEVER)
    for m in (A, B):
        await one.enroll(m, "t")

    async def spend(i: int) -> int:
        try:
            await (one if i % 2 else two).transfer(A, B, 100, f"storm-{i}", "t")
            return 100
        except (Refused, Contended):
            return 0

    async def earn(i: int) -> int:
        await (two if i % 2 else one).earn_from([topup_recorded(A, 100_000, f"T-storm-{i}")])
        return 0

    sent = await asyncio.gather(*(spend(i) for i in range(20)), *(earn(i) for i in range(5)))
    assert sum(sent) <= 1000 + 5 * 100
    entries = await chain(store, A)
    assert all(e["balance_after"] >= 0 for e in entries)
    assert await balance(store, A) == 1000 + 500 - sum(sent) == sum(e["delta"] for e in entries)
    assert await balance(store, B) == 1000 + sum(sent)


async def test_a_stale_member_in_a_batch_costs_one_more_insert_and_holds_up_no_other_member(
    store: Store, publisher: EventPublisher, topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = process(store, publisher, topic, NEVER)
    elsewhere = process(store, publisher, topic, NEVER)  # another replica
    members = ["84770000041", "84770000042", "84770000043"]
    for m in members:
        await here.enroll(m, "t")
    await here.earn_from([topup_recorded(m, 10_000, f"T-warm-{m}") for m in members])
    await elsewhere.earn_from([topup_recorded(members[1], 10_000, "T-elsewhere")])  # `here` is stale on it
    calls: list[int] = []
    real = store.insert_run

    async def counted(collection: str, docs: Any) -> int:
        calls.append(len(docs))
        return await real(collection, docs)

    monkeypatch.setattr(store, "insert_run", counted)
    batch = [topup_recorded(m, 10_000, f"T-batch-{m}-{k}") for m in members for k in range(2)]
    applied = await here.earn_from(batch)
    # The stale member's first entry fails; the rest, less its entries, go in one more insert
    # (the stale member is then settled on its own).
    assert calls == [6, 2]
    assert sorted(d["_id"] for d in applied) == sorted(f"earn:topup:{e.data.topup_id}" for e in batch)
    for m, extra in zip(members, (0, 10, 0), strict=True):
        entries = await chain(store, m)
        assert await balance(store, m) == 1000 + 10 + 20 + extra == sum(e["delta"] for e in entries)
