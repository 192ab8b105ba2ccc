"""The points ledger on the real store: each earning event counts once, concurrent transfers
from two replicas never go below zero and conserve points, crashes roll forward."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from loyalty_service.domain.wallet import Refused
from loyalty_service.jobs import ProgrammeJobs
from loyalty_service.ledger import Contended, PointsLedger, current_wallet
from loyalty_service.programme import Programme
from loyalty_service.store import LEDGER, WALLETS
from mobi_contracts import Topic
from mobi_contracts.events.payment import BillPaid, BillPaidData
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import topup_recorded

from .conftest import make_programme

pytestmark = pytest.mark.integration
A, B, C = "84770000001", "84770000002", "84770000003"


async def points(store: Store, msisdn: str) -> int:
    wallet = await current_wallet(store, msisdn)
    assert wallet is not None
    return wallet.points


async def ledger_sum(store: Store, msisdn: str) -> int:
    entries = await store[LEDGER].find({"member": msisdn}).to_list()
    seqs = sorted(e["seq"] for e in entries)
    assert seqs == list(range(1, len(seqs) + 1)), "the chain has a gap or a duplicate"
    return sum(e["delta"] for e in entries)


async def test_a_topup_earns_once_however_often_it_is_delivered(programme: Programme, store: Store) -> None:
    await programme.enroll(A, "t")
    event = topup_recorded(A, 100_000, f"T{uuid.uuid4().hex[:8]}")
    bill = BillPaid.new(
        subject=A,
        producer="tests",
        correlation_id="c",
        data=BillPaidData(
            bill_id="B1", amount_vnd=250_000, payment_id="P1", payer_msisdn=A, paid_at=datetime.now(UTC)
        ),
    )
    first = await programme.earn_from([event, bill])
    assert [d["delta"] for d in first] == [100, 250]
    again = await programme.earn_from([event, event, bill])  # a redelivery, and a duplicate publish
    assert [d["_id"] for d in again] == [d["_id"] for d in first]  # the stored entries, to publish again
    assert await points(store, A) == 1000 + 350
    assert await ledger_sum(store, A) == 1350


async def test_payments_of_non_members_and_from_before_enrolment_earn_nothing(
    programme: Programme, store: Store
) -> None:
    await programme.enroll(A, "t")
    old = topup_recorded(B, 100_000, "T-nonmember")
    before = topup_recorded(A, 100_000, "T-before")
    before = before.model_copy(
        update={
            "data": before.data.model_copy(update={"recorded_at": datetime.now(UTC) - timedelta(hours=1)})
        }
    )
    assert await programme.earn_from([old, before]) == []
    assert await store[WALLETS].find_one({"_id": B}) is None
    assert await points(store, A) == 1000


async def test_fifty_concurrent_transfers_from_two_replicas_never_overdraw_and_conserve_points(
    store: Store, ledger: PointsLedger, publisher: EventPublisher, topic: Topic
) -> None:
    one = make_programme(store, ledger, welcome_points=1000)
    # A second replica: its own ledger object, so its own in-process locks.
    two = make_programme(store, PointsLedger(store, publisher, "tests", topic), welcome_points=1000)
    for m in (A, B, C):
        await one.enroll(m, "t")

    async def send(i: int) -> int:
        service = one if i % 2 else two
        try:
            result = await service.transfer(A, B if i % 3 else C, 30, f"storm-key-{i:04d}", "t")
            return int(result["points"])
        except (Refused, Contended):
            return 0

    sent = await asyncio.gather(*(send(i) for i in range(50)))
    assert sum(sent) == 30 * 33  # 1000 points allow 33 transfers of 30
    balances = [await one.ledger.wallet(m) for m in (A, B, C)]
    to_b = sum(s for i, s in enumerate(sent) if i % 3)
    to_c = sum(s for i, s in enumerate(sent) if not i % 3)
    assert [b.points for b in balances if b] == [1000 - 990, 1000 + to_b, 1000 + to_c]
    for m in (A, B, C):
        wallet = await one.ledger.wallet(m)
        assert wallet is not None
        assert await ledger_sum(store, m) == wallet.points
    assert sum(b.points for b in balances if b) == 3000


async def test_a_retried_transfer_moves_the_points_once(programme: Programme, store: Store) -> None:
    for m in (A, B):
        await programme.enroll(m, "t")
    first = await programme.transfer(A, B, 100, "same-key-1", "t")
    again = await programme.transfer(A, B, 100, "same-key-1", "t")
    assert again == first
    assert (await points(store, A), await points(store, B)) == (900, 1100)
    with pytest.raises(Exception, match="another transfer"):
        await programme.transfer(A, B, 200, "same-key-1", "t")


@pytest.mark.parametrize(
    ("to", "amount", "code"),
    [
        (A, 100, "transfer_to_self"),
        (C, 100, "recipient_not_member"),
        (B, 5, "transfer_amount_out_of_range"),
        (B, 10**8, "transfer_amount_out_of_range"),
        (B, 5000, "insufficient_points"),
    ],
)
async def test_refused_transfers_change_nothing(
    programme: Programme, store: Store, to: str, amount: int, code: str
) -> None:
    for m in (A, B):
        await programme.enroll(m, "t")
    with pytest.raises(Refused) as refused:
        await programme.transfer(A, to, amount, "refused-key", "t")
    assert refused.value.code == code
    assert (await points(store, A), await points(store, B)) == (1000, 1000)
    assert await store[LEDGER].count_documents({"kind": "transfer_out"}) == 0


async def test_a_snapshot_behind_the_ledger_is_read_through_and_a_restart_decides_on_the_ledger(
    programme: Programme, store: Store, topic: Topic
) -> None:
    await programme.enroll(A, "t")
    await programme.earn_from([topup_recorded(A, 50_000, "T-crash")])
    # The snapshot one entry behind (a crash, or simply not written yet).
    last = await store[LEDGER].find_one({"_id": "earn:topup:T-crash"})
    assert last is not None
    behind = await store[LEDGER].find_one({"member": A, "seq": last["seq"] - 1})
    assert behind is not None
    await store[WALLETS].update_one({"_id": A}, {"$set": behind["state_after"]})
    snapshot = await store[WALLETS].find_one({"_id": A})
    assert snapshot is not None and snapshot["points"] == 1000
    assert (await programme.summary(A))["points"] == 1050  # a reader adds the ledger's tail
    assert await points(store, A) == 1050
    # A writer deciding on the stale copy (a fresh process: nothing in memory) decides on the
    # ledger's state: the earlier earning is neither lost nor counted twice.
    restarted = make_programme(store, PointsLedger(store, programme.ledger.publisher, "tests", topic))
    applied = await restarted.earn_from(
        [topup_recorded(A, 50_000, "T-crash"), topup_recorded(A, 20_000, "T-after")]
    )
    assert [d["_id"] for d in applied] == ["earn:topup:T-crash", "earn:topup:T-after"]
    assert await points(store, A) == 1070
    assert await ledger_sum(store, A) == 1070


async def test_a_transfer_whose_credit_a_crash_skipped_is_completed_once_by_recovery(
    programme: Programme, store: Store
) -> None:
    for m in (A, B):
        await programme.enroll(m, "t")

    async def crash(out: object) -> None:
        raise RuntimeError("process killed")

    complete = programme.complete_transfer
    programme.complete_transfer = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError):
        await programme.transfer(A, B, 300, "crash-key-1", "t")
    programme.complete_transfer = complete  # type: ignore[method-assign]
    assert (await points(store, A), await points(store, B)) == (700, 1000)  # debited, not yet credited
    jobs = ProgrammeJobs(programme)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await jobs.recover(now=later) == 1
    assert await jobs.recover(now=later) == 0
    assert (await points(store, A), await points(store, B)) == (700, 1300)
    received = await store[LEDGER].find_one({"_id": {"$regex": "^transfer:.*:in$"}, "member": B})
    assert received is not None
    sent = await programme.ledger.entry(received["_id"].replace(":in", ":out"))
    assert sent is not None
    assert received["buckets"] == {month: -p for month, p in sent["buckets"].items()}  # same expiry dates


async def test_expiry_and_tiers_run_once_at_the_injected_time(programme: Programme, store: Store) -> None:
    await programme.enroll(A, "t")
    await programme.earn_from([topup_recorded(A, 5_000_000, "T-big")])  # 5000 points: silver
    jobs = ProgrammeJobs(programme)
    now = datetime.now(UTC)
    first = await jobs.run(now)
    assert (first.tiers, first.tenure, first.expired) == (1, 1, 0)  # 11 years on the network: 100 points
    assert (await programme.summary(A))["tier"] == "silver"
    assert vars(await jobs.run(now)) == {"expired": 0, "tenure": 0, "tiers": 0}
    # Two years on, everything earned until now has expired (once) and the tier falls back;
    # only that month's tenure points are left.
    later = now + timedelta(days=730)
    assert vars(await jobs.run(later)) == {"expired": 1, "tenure": 1, "tiers": 1}
    assert vars(await jobs.run(later)) == {"expired": 0, "tenure": 0, "tiers": 0}
    wallet = await programme.ledger.wallet(A)
    assert wallet is not None
    assert (wallet.tier, wallet.points) == ("member", 100)
    assert await ledger_sum(store, A) == 100
