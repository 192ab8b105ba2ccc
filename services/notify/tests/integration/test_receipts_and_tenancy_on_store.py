"""Receipts and alerts on the real store, pushed to the sandbox's app in process: what is
still news after an outage goes out once, a replay of old events pushes nothing, and a number
that changed hands never pushes to the previous owner's phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mobi_contracts.events.subscriber import SubscriberOwnerChanged, SubscriberOwnerChangedData
from mobi_contracts.events.vas import VasRenewalDue, VasRenewalDueData
from notify_service.directory import Directory, Preferences
from notify_service.push import Pusher
from notify_service.settings import NotifySettings
from notify_service.store import INDEXES, PREFERENCES
from notify_service.tenancy import TenancyEnds
from notify_service.transactional import Transactional
from push_sandbox.app import PushSandbox
from servicekit.mongo import Store
from servicekit.tenancy import at_store_precision
from servicekit.testing import topup_recorded

pytest_plugins = ["servicekit.testing"]
pytestmark = pytest.mark.integration
N = "84779000001"
OLD_PHONE, NEW_PHONE = "a" * 64, "b" * 64


@pytest.fixture
async def parts(store: Store) -> tuple[Store, Directory, Transactional, PushSandbox]:
    await store.ensure_indexes(INDEXES)
    sandbox = PushSandbox()
    settings = NotifySettings(push_base_url="http://sandbox", push_concurrency=8)
    pusher = Pusher(settings, http=httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox)))
    directory = Directory(store)
    rules = {"low_balance_vnd": 10_000, "receipt_max_age_seconds": settings.receipt_max_age_seconds}
    return store, directory, Transactional(store, directory, pusher, "tests", rules), sandbox


def renewal_notice(occurred_at: datetime, due_at: datetime) -> VasRenewalDue:
    return VasRenewalDue.new(
        subject=N,
        producer="vas-service",
        correlation_id="t",
        occurred_at=occurred_at,
        data=VasRenewalDueData(
            subscription_id="s1", code="FUNRING", period=2, amount_vnd=5_000, due_at=due_at
        ),
    )


def owner_changed(at: datetime) -> SubscriberOwnerChanged:
    return SubscriberOwnerChanged.new(
        subject=N,
        producer="account-service",
        correlation_id="ops",
        data=SubscriberOwnerChangedData(
            change_id=f"{N}:2", status="active", plan="prepaid", owner_since=at, changed_at=at
        ),
    )


async def test_after_an_outage_a_renewal_notice_still_due_is_pushed_once_and_old_receipts_are_not(
    parts: Any,
) -> None:
    _, directory, transactional, sandbox = parts
    now = datetime.now(UTC)
    await directory.register(N, "apns", OLD_PHONE, "5.0", "vi", now - timedelta(days=30))
    late_notice = renewal_notice(now - timedelta(hours=3), due_at=now + timedelta(hours=21))
    past_notice = renewal_notice(now - timedelta(days=2), due_at=now - timedelta(days=1))
    last_week = topup_recorded(N, 50_000, "TP-last-week").model_copy(
        update={"occurred_at": now - timedelta(days=7)}
    )
    await transactional.handle([late_notice, past_notice, last_week])
    await transactional.handle([late_notice, past_notice, last_week])  # redelivered, or replayed
    assert sandbox.state.deliveries[OLD_PHONE] == 1, "the notice still due went out once; the rest is history"


async def test_a_number_that_changed_hands_pushes_nothing_to_the_previous_owners_phone(parts: Any) -> None:
    store, directory, transactional, sandbox = parts
    now = datetime.now(UTC)
    await directory.register(N, "apns", OLD_PHONE, "5.0", "vi", now - timedelta(days=30))
    await directory.save_preferences(N, Preferences(language="en"), now - timedelta(days=1))
    owner_since = at_store_precision(now)

    # The new owner's phone is registered before notify has heard of the change.
    await directory.register(N, "apns", NEW_PHONE, "5.0", "vi", now + timedelta(seconds=1), owner_since)
    await transactional.handle([topup_recorded(N, 20_000, "TP-new-owner-1")])
    assert (sandbox.state.deliveries[OLD_PHONE], sandbox.state.deliveries[NEW_PHONE]) == (0, 1)
    assert [d["token"] for d in await directory.current_devices(N, owner_since)] == [NEW_PHONE]
    assert await directory.preferences(N, owner_since) == Preferences(), "the previous owner's are not theirs"

    ends = TenancyEnds(store, directory)
    for _ in range(2):  # the event, and a replay of it
        await ends.apply([owner_changed(owner_since)])
    assert [d["token"] for d in await directory.devices_of(N)] == [NEW_PHONE]
    assert await store[PREFERENCES].find_one({"_id": N}) is None
    await transactional.handle([topup_recorded(N, 30_000, "TP-new-owner-2")])
    assert (sandbox.state.deliveries[OLD_PHONE], sandbox.state.deliveries[NEW_PHONE]) == (0, 2)


async def test_with_no_phone_of_the_new_owner_yet_the_recorded_change_keeps_pushes_off_the_old_one(
    parts: Any,
) -> None:
    store, directory, transactional, sandbox = parts
    now = datetime.now(UTC)
    await directory.register(N, "apns", OLD_PHONE, "5.0", "vi", now - timedelta(days=30))
    owner_since = at_store_precision(now)
    await TenancyEnds(store, directory).apply([owner_changed(owner_since)])
    await transactional.handle([topup_recorded(N, 20_000, "TP-after-change")])
    assert sandbox.state.deliveries[OLD_PHONE] == 0
    assert await directory.devices_of(N) == []
