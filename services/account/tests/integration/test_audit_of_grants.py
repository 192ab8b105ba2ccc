"""The money invariants cover what VAS charges and loyalty rewards create: data buckets and
airtime are their journal sums, and no entry ever takes an account below zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_service.audit import LedgerAudit
from account_service.balance_state import current_balances
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL, SUBSCRIBERS
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import make_topic, topup_recorded
from servicekit.testing import points_redeemed as redeemed
from servicekit.testing import vas_charge_requested as vas_charge

pytestmark = pytest.mark.integration
A = "84901229001"


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, unique: str) -> LedgerService:
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_one({"_id": A, "plan": "prepaid", "status": "active"})
    topic = await make_topic(
        f"test.audit-grants.{unique}",
        (BalanceChanged, BalanceChangeRejected, RedemptionGranted, RedemptionRefused),
    )
    # A snapshot after every decision: the tests edit it by hand.
    ledger = LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=1))
    await ledger.apply(
        [
            topup_recorded(A, 50_000, "AUDIT-G1"),  # not the payment service's: not a top-up finding
            vas_charge(A, "pack-1", 10_000, bucket_kb=4_096, code="D5"),
            redeemed(A, "rdm-audit-1", kind="data", data_kb=2_048, validity_days=3),
            redeemed(A, "rdm-audit-2", kind="airtime", amount_vnd=5_000),
            vas_charge(A, "too-dear", 1_000_000),
        ]
    )
    return ledger


async def balance_findings(store: Store, payments: Store) -> list[list[str]]:
    audit = LedgerAudit(store, payments, grace=timedelta(0))
    now = datetime.now(UTC) + timedelta(seconds=1)
    full, recent = await audit.run(now), await audit.run(now, recent=timedelta(hours=2))
    return [full.findings["balances"], recent.findings["balances"]]


async def test_buckets_and_airtime_from_charges_and_rewards_are_their_journal_sums(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    doc = await store[BALANCES].find_one({"_id": A})
    assert doc is not None and doc["main"] == 45_000 and len(doc["data"]) == 2
    assert await balance_findings(store, payments) == [[], []]


async def test_a_bucket_changed_outside_the_ledger_is_found(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    doc = await store[BALANCES].find_one({"_id": A})
    assert doc is not None
    edited = [d | {"remaining_kb": 9_999} if d["id"] == "D5-pack-1" else d for d in doc["data"]]
    await store[BALANCES].update_one({"_id": A}, {"$set": {"data": edited}})  # by hand
    for found in await balance_findings(store, payments):
        assert found == [f"{A} data:D5-pack-1: balance 9999 != journal sum 4096"]


async def test_an_entry_that_took_an_account_below_zero_is_found(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    await store[JOURNAL].update_one(
        {"_id": "vas:pack-1"},
        {"$set": {"entries.0.balance_after": -1}},
    )
    for found in await balance_findings(store, payments):
        assert found == ["vas:pack-1: took main to -1"]


async def test_grants_decided_beyond_a_lagging_snapshot_are_judged_on_the_journal(
    ledger: LedgerService, store: Store, payments: Store, publisher: EventPublisher
) -> None:
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None
    never = SnapshotPolicy(every=1_000, seconds=3_600)
    lazy = LedgerService(store, publisher, ledger.topic, snapshots=never)
    await lazy.apply(
        [
            vas_charge(A, "pack-2", 5_000, bucket_kb=1_024, code="D1"),
            redeemed(A, "rdm-audit-3", kind="airtime", amount_vnd=2_000),
        ]
    )
    assert await store[BALANCES].find_one({"_id": A}) == snapshot, "the snapshot lags"
    assert (await current_balances(store, A)).main == 45_000 - 5_000 + 2_000
    assert await balance_findings(store, payments) == [[], []]
    charge = await store[JOURNAL].find_one({"_id": "vas:pack-2"})
    assert charge is not None
    doubled = [e | {"delta": 2_048} if e["account"] == "data:D1-pack-2" else e for e in charge["entries"]]
    await store[JOURNAL].update_one({"_id": "vas:pack-2"}, {"$set": {"entries": doubled}})  # by hand
    head = f"{A} state after seq {snapshot['seq'] + 2}"
    for found in await balance_findings(store, payments):
        assert found == [f"{head} data:D1-pack-2: balance 1024 != journal sum 2048"]
