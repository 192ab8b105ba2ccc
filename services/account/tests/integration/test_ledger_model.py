"""The ledger's promise as a hypothesis state machine on the real store and Kafka: top-ups and
usage in batches, redeliveries, restarts (a consumer with no memory) and a second consumer
deciding on the same subscribers (a rebalance overlap), with snapshots that lag the journal.
After every batch each subscriber's balance is what a plain model says (usage beyond the
balance is refused, a redelivery changes nothing), and the journal is the truth (audit)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from account_service.audit import check_balances
from account_service.balance_state import current_balances
from account_service.domain.snapshots import SnapshotPolicy
from account_service.ledger import LedgerService
from account_service.store import BALANCES, INDEXES, JOURNAL
from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.network import UsageRecorded
from servicekit.kafka.errors import TransientError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import kafka_access, make_topic, topup_recorded, usage_recorded

pytestmark = pytest.mark.integration
POLICY = SnapshotPolicy(every=2, seconds=3_600, budget=1)  # snapshots lag, and catch up slowly


@dataclass
class Platform:
    loop: asyncio.AbstractEventLoop
    store: Store
    publisher: EventPublisher
    topic: Topic

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def ledger(self) -> LedgerService:
        return LedgerService(self.store, self.publisher, self.topic, snapshots=POLICY)


class LedgerModel(RuleBasedStateMachine):
    platform: ClassVar[Platform]

    def __init__(self) -> None:
        super().__init__()
        # Not `random`: hypothesis seeds it the same for every example.
        self.numbers = [f"8495{uuid.uuid4().int % 10**7:07d}" for _ in range(2)]
        self.queued = dict.fromkeys(self.numbers, 0)  # the model, with the pending batch
        self.applied = dict(self.queued)  # the model, as of the last batch
        self.pending: list[AnyEvent] = []
        self.sent: list[AnyEvent] = []
        self.owner = self.platform.ledger()
        self.other = self.platform.ledger()  # another consumer holding the same partitions

    @rule(who=st.integers(0, 1), thousands=st.integers(1, 5))
    def top_up(self, who: int, thousands: int) -> None:
        number = self.numbers[who]
        self.pending.append(topup_recorded(number, thousands * 1_000, f"M-{uuid.uuid4().hex[:12]}"))
        self.queued[number] += thousands * 1_000

    @rule(who=st.integers(0, 1), thousands=st.integers(1, 5))
    def use(self, who: int, thousands: int) -> None:
        number, charge = self.numbers[who], thousands * 1_000
        self.pending.append(usage(number, charge))
        if self.queued[number] >= charge:  # else refused: nothing taken
            self.queued[number] -= charge

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        if self.sent:
            self.pending.append(data.draw(st.sampled_from(self.sent)))

    @rule(by_the_other=st.booleans())
    def deliver_the_batch(self, by_the_other: bool) -> None:
        batch, self.pending = self.pending, []
        ledger = self.other if by_the_other else self.owner
        for _ in range(20):  # what the kit's consumer does with a TransientError
            try:
                self.platform.run(ledger.apply(batch))
                break
            except TransientError:
                continue
        else:
            raise AssertionError("the batch was never applied")
        self.sent += batch
        self.applied = dict(self.queued)

    @rule()
    def restart(self) -> None:
        self.owner = self.platform.ledger()

    @invariant()
    def balances_are_the_models_and_the_journal_is_the_truth(self) -> None:
        self.platform.run(self._check())

    async def _check(self) -> None:
        store = self.platform.store
        for number in self.numbers:
            state = await current_balances(store, number)
            assert state.main == self.applied[number], number
        mine = {"$or": [{"msisdn": n} for n in self.numbers]}
        journal = await store[JOURNAL].find(mine).to_list()
        snapshots = await store[BALANCES].find({"$or": [{"_id": n} for n in self.numbers]}).to_list()
        assert check_balances(snapshots, journal) == []
        assert all(e["balance_after"] >= 0 for d in journal for e in d["entries"])


def usage(subject: str, charge: int) -> UsageRecorded:
    return usage_recorded(subject, charge)


def test_the_ledger_promise_holds_across_batches_restarts_redeliveries_and_overlaps(mongodb_url: str) -> None:
    loop = asyncio.new_event_loop()

    async def start() -> Platform:
        store = Store(mongodb_url, f"test_model_{uuid.uuid4().hex[:10]}", app_name="tests")
        await store.connect()
        await store.ensure_indexes(INDEXES)
        publisher = EventPublisher(kafka_access(), "tests")
        await publisher.start()
        topic = await make_topic(
            f"test.ledger-model.{uuid.uuid4().hex[:8]}", (BalanceChanged, BalanceChangeRejected)
        )
        return Platform(loop, store, publisher, topic)

    platform = loop.run_until_complete(start())
    LedgerModel.platform = platform
    try:
        options = settings(
            max_examples=8,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        run_state_machine_as_test(LedgerModel, settings=options)
    finally:
        loop.run_until_complete(platform.publisher.stop())
        loop.run_until_complete(platform.store.client.drop_database(platform.store.db.name))
        loop.run_until_complete(platform.store.close())
        loop.close()
