"""A number that changes hands, on the real store: the previous owner's membership closes
with its points (once, however often the event comes), the new owner enrols afresh and sees
nothing of the old one; the operators' job run shares the scheduled job's lease and expires
a month's points once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from loyalty_service.jobs import ProgrammeJobs, Schedules
from loyalty_service.ledger import current_wallet
from loyalty_service.programme import Programme
from loyalty_service.redemptions import Redemptions
from loyalty_service.store import CARD_REQUESTS, LEDGER
from loyalty_service.tenancy import MembershipEnds
from mobi_contracts.events.loyalty import RedemptionRefused, RedemptionRefusedData
from mobi_contracts.events.subscriber import SubscriberOwnerChanged, SubscriberOwnerChangedData
from servicekit.errors import ApiError
from servicekit.mongo import Store
from servicekit.tenancy import at_store_precision
from servicekit.testing import topup_recorded

pytestmark = pytest.mark.integration
A = "84770000021"
ADDRESS = {"recipient_name": "Chủ Cũ", "phone": A, "street": "1 Lê Lợi", "ward": "Bến Nghé",
           "district": "Quận 1", "province": "TP Hồ Chí Minh"}  # fmt: skip


def owner_changed(at: datetime, seq: int = 2) -> SubscriberOwnerChanged:
    return SubscriberOwnerChanged.new(
        subject=A,
        producer="account-service",
        correlation_id="ops",
        data=SubscriberOwnerChangedData(
            change_id=f"{A}:{seq}", status="active", plan="prepaid", owner_since=at, changed_at=at
        ),
    )


async def ledger_sum(store: Store) -> int:
    return sum(e["delta"] for e in await store[LEDGER].find({"member": A}).to_list())


async def test_a_number_that_changes_hands_closes_the_membership_once_and_the_new_owner_starts_afresh(
    programme: Programme, ends: MembershipEnds, store: Store
) -> None:
    await programme.enroll(A, "t")
    await programme.earn_from([topup_recorded(A, 200_000, "T-old-owner")])
    card, _ = await ends.offers.request_card(A, ADDRESS, "card-key-old", "t")
    await asyncio.sleep(0.01)
    boundary = at_store_precision(datetime.now(UTC))  # as tokens and the store keep it

    await ends.apply([owner_changed(boundary)])
    await ends.apply([owner_changed(boundary)])  # a replay
    await ends.apply([owner_changed(boundary - timedelta(days=400), seq=1)])  # an older change, late
    wallet = await programme.ledger.wallet(A)
    assert wallet is not None and wallet.closed and wallet.points == 0
    assert await store[LEDGER].count_documents({"member": A, "kind": "close"}) == 1
    assert await ledger_sum(store) == 0
    cancelled = await store[CARD_REQUESTS].find_one({"_id": card["request_id"]})
    assert cancelled is not None and cancelled["status"] == "cancelled"
    assert not await programme.ledger.is_member(A), "nobody can send points to a closed membership"

    for view in (programme.summary(A, boundary), programme.history(A, None, 10, boundary)):
        with pytest.raises(ApiError, match="not a member"):
            await view
    assert await ends.offers.my_cards(A, boundary) == []

    summary, created = await programme.enroll(A, "t", owner_since=boundary)
    assert created and summary["points"] == 1000  # the welcome points of a new member, nothing more
    history = (await programme.history(A, None, 10, boundary))["items"]
    assert [h["kind"] for h in history] == ["enroll"] and sum(h["points"] for h in history) == 1000
    again, created_again = await programme.enroll(A, "t", owner_since=boundary)
    assert not created_again and again["points"] == 1000
    fresh, _ = await ends.offers.request_card(
        A, {**ADDRESS, "recipient_name": "Chủ Mới"}, "card-key-new", "t", boundary
    )
    assert [c["request_id"] for c in await ends.offers.my_cards(A, boundary)] == [fresh["request_id"]]
    await ends.apply([owner_changed(boundary)])  # the event replayed after the new enrolment
    assert (await programme.summary(A, boundary))["points"] == 1000


async def test_the_new_owner_enrolling_before_the_event_arrives_closes_the_old_membership_first(
    programme: Programme, ends: MembershipEnds, store: Store
) -> None:
    await programme.enroll(A, "t")
    await asyncio.sleep(0.01)
    boundary = at_store_precision(datetime.now(UTC))  # as tokens and the store keep it
    summary, created = await programme.enroll(A, "t", owner_since=boundary)
    assert created and summary["points"] == 1000
    assert await store[LEDGER].count_documents({"member": A, "kind": "close"}) == 1
    await ends.apply([owner_changed(boundary)])  # comes late: the new owner's membership stays
    assert (await programme.summary(A, boundary))["points"] == 1000
    assert await store[LEDGER].count_documents({"member": A, "kind": "close"}) == 1
    assert await ledger_sum(store) == 1000


async def test_a_refusal_after_the_membership_closed_gives_nothing_back_to_the_next_owner(
    programme: Programme, redemptions: Redemptions, ends: MembershipEnds, store: Store
) -> None:
    await programme.enroll(A, "t")
    redeemed = await redemptions.redeem(A, "DATA-2GB-7D", "redeem-key-old", "t")
    await asyncio.sleep(0.01)
    boundary = at_store_precision(datetime.now(UTC))  # as tokens and the store keep it
    await ends.apply([owner_changed(boundary)])
    await programme.enroll(A, "t", owner_since=boundary)
    refusal = RedemptionRefused.new(
        subject=A,
        producer="account-service",
        correlation_id="c",
        data=RedemptionRefusedData(
            redemption_id=redeemed["redemption_id"],
            granter="account-service",
            cause_event_id="x",
            reason="not_eligible",
            detail="the number changed hands after the redemption",
            refused_at=datetime.now(UTC),
        ),
    )
    assert await redemptions.on_answers([refusal]) == []
    assert (await programme.summary(A, boundary))["points"] == 1000
    assert await store[LEDGER].count_documents({"member": A, "kind": "reverse"}) == 0
    with pytest.raises(ApiError):
        await redemptions.redemption(A, redeemed["redemption_id"], boundary)  # not the new owner's


@pytest.fixture
def schedules(programme: Programme, redis: Redis, unique: str) -> Schedules:
    return Schedules(ProgrammeJobs(programme), redis, 3600, 60, lease_prefix=f"test-loyalty-{unique}")


async def test_an_operators_run_is_refused_while_the_scheduled_job_holds_the_lease(
    programme: Programme, schedules: Schedules
) -> None:
    await programme.enroll(A, "t")
    running, release = asyncio.Event(), asyncio.Event()

    async def scheduled_run() -> None:
        running.set()
        await release.wait()

    held = asyncio.create_task(schedules.daily.run_once(scheduled_run))
    await running.wait()
    assert await schedules.run_now(datetime.now(UTC)) is None, "no second run while one holds the lease"
    release.set()
    await held
    report = await schedules.run_now(datetime.now(UTC))
    assert report is not None


async def test_a_months_points_expire_once_whatever_the_runs_and_their_times(
    programme: Programme, schedules: Schedules, store: Store
) -> None:
    await programme.enroll(A, "t")
    await programme.earn_from([topup_recorded(A, 300_000, "T-expiring")])
    later = datetime.now(UTC) + timedelta(days=800)
    runs = [await schedules.run_now(later + timedelta(days=d)) for d in (0, 0, 3, 40)]
    assert [r.expired for r in runs if r is not None] == [1, 0, 0, 0]
    expiries = await store[LEDGER].find({"member": A, "kind": "expire"}).to_list()
    assert (
        len(expiries) == 1 and expiries[0]["_id"].startswith(f"expire:{A}:") and expiries[0]["delta"] == -1300
    )
    wallet = await current_wallet(store, A)
    assert wallet is not None and await ledger_sum(store) == wallet.points
