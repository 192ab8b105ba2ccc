"""The money invariants on the real store: a clean ledger passes, every kind of break is found,
by the full check (`make ledger-check`) and by the periodic check of recent changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_service.audit import PAYMENT_FINALS, LedgerAudit
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL
from mobi_contracts import Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.outbox import outbox_entries
from servicekit.testing import make_topic, topup_recorded

pytestmark = pytest.mark.integration
A = "84901119001"


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, unique: str) -> LedgerService:
    await store.ensure_indexes(INDEXES)
    topic: Topic = await make_topic(f"test.audit.{unique}", (BalanceChanged, BalanceChangeRejected))
    # A snapshot after every decision: the tests edit it by hand.
    return LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=1))


async def settled_topup(payments: Store, payment_id: str, amount: int, at: datetime) -> None:
    """A card top-up the payment service settled, as it stores it."""
    event = topup_recorded(A, amount, payment_id)
    topic = Topic(name="payment.events.v1", description="", events=(type(event),), producer="tests")
    events = outbox_entries(topic, [event])
    events[0]["headers"]["event-type"] = "TopupRecorded"
    succeeded = dict(events[0], headers={"event-type": "PaymentSucceeded"})
    await payments[PAYMENT_FINALS].insert_one(
        {
            "_id": payment_id,
            "status": "succeeded",
            "kind": "topup",
            "msisdn": A,
            "target_msisdn": A,
            "amount_vnd": amount,
            "settled_at": at,
            "settled_hour": at.strftime("%Y%m%d%H"),
            "events": [succeeded, *events],
        }
    )


async def both_checks(store: Store, payments: Store) -> list[dict[str, list[str]]]:
    audit = LedgerAudit(store, payments, grace=timedelta(0))
    now = datetime.now(UTC) + timedelta(seconds=1)
    return [(await audit.run(now)).findings, (await audit.run(now, recent=timedelta(hours=2))).findings]


async def test_a_clean_ledger_passes_both_checks(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    now = datetime.now(UTC)
    await settled_topup(payments, "PAYAUDIT1", 30_000, now)
    await ledger.apply([topup_recorded(A, 30_000, "PAYAUDIT1")])
    for findings in await both_checks(store, payments):
        assert findings == {"balances": [], "topups": [], "events": []}


async def test_a_balance_that_is_not_its_journal_sum_is_found(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    now = datetime.now(UTC)
    await settled_topup(payments, "PAYAUDIT2", 20_000, now)
    await ledger.apply([topup_recorded(A, 20_000, "PAYAUDIT2")])
    await store[BALANCES].update_one({"_id": A}, {"$set": {"main": 25_000}})  # edited by hand
    for findings in await both_checks(store, payments):
        assert findings["balances"] == [f"{A} main: balance 25000 != journal sum 20000"]


async def test_a_settled_topup_never_credited_and_a_credit_without_payment_are_found(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    now = datetime.now(UTC)
    await settled_topup(payments, "PAYAUDIT3", 10_000, now)  # never reaches the account service
    await ledger.apply([topup_recorded(A, 40_000, "PAYNOSUCH4")])  # credited, never paid
    for findings in await both_checks(store, payments):
        assert sorted(findings["topups"]) == [
            f"top-up PAYAUDIT3 of 10000 for {A} succeeded but was never credited",
            f"top-up PAYNOSUCH4 credited to {A} with no succeeded payment",
        ]


async def test_a_settled_payment_without_its_events_is_found(store: Store, payments: Store) -> None:
    await payments[PAYMENT_FINALS].insert_one(
        {
            "_id": "PAYAUDIT5",
            "status": "failed",
            "kind": "topup",
            "msisdn": A,
            "amount_vnd": 10_000,
            "settled_at": datetime.now(UTC),
            "settled_hour": datetime.now(UTC).strftime("%Y%m%d%H"),
            "events": [],
        }
    )
    for findings in await both_checks(store, payments):
        assert findings["events"] == ["payment PAYAUDIT5 (failed) lacks ['PaymentFailed']"]


async def test_a_decision_missing_from_the_journal_breaks_the_run_of_seqs(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    now = datetime.now(UTC)
    for n, amount in enumerate((1_000, 2_000, 3_000)):
        await settled_topup(payments, f"PAYSEQ{n}", amount, now)
        await ledger.apply([topup_recorded(A, amount, f"PAYSEQ{n}")])
    await store[JOURNAL].delete_one({"_id": "topup:PAYSEQ1"})
    for findings in await both_checks(store, payments):
        assert any("do not run 1..3" in f for f in findings["balances"])
        assert any("PAYSEQ1" in f for f in findings["topups"])


async def test_a_state_after_that_is_not_its_journal_sum_is_found(
    ledger: LedgerService, store: Store, payments: Store
) -> None:
    now = datetime.now(UTC)
    for n, amount in enumerate((1_000, 2_000)):
        await settled_topup(payments, f"PAYSTATE{n}", amount, now)
        await ledger.apply([topup_recorded(A, amount, f"PAYSTATE{n}")])
    await store[JOURNAL].update_one({"_id": "topup:PAYSTATE1"}, {"$set": {"state_after.main": 9_000}})
    for findings in await both_checks(store, payments):
        assert findings["balances"] == [f"{A} state after seq 2 main: balance 9000 != journal sum 3000"]


async def test_a_snapshot_behind_its_journal_is_normal_but_one_ahead_of_it_is_found(
    store: Store, publisher: EventPublisher, payments: Store, unique: str
) -> None:
    await store.ensure_indexes(INDEXES)
    topic = await make_topic(f"test.audit-lag.{unique}", (BalanceChanged, BalanceChangeRejected))
    lazy = LedgerService(store, publisher, topic, snapshots=SnapshotPolicy(every=2, seconds=3600))
    now = datetime.now(UTC)
    for n, amount in enumerate((1_000, 2_000, 4_000)):
        await settled_topup(payments, f"PAYLAG{n}", amount, now)
        await lazy.apply([topup_recorded(A, amount, f"PAYLAG{n}")])
    snapshot = await store[BALANCES].find_one({"_id": A})
    assert snapshot is not None and (snapshot["seq"], snapshot["main"]) == (2, 3_000)
    for findings in await both_checks(store, payments):
        assert findings == {"balances": [], "topups": [], "events": []}
    await store[BALANCES].update_one({"_id": A}, {"$set": {"seq": 4}})  # ahead of every decision
    for findings in await both_checks(store, payments):
        assert findings["balances"] == [f"{A}: snapshot at seq 4 is ahead of its journal (1..3)"]
