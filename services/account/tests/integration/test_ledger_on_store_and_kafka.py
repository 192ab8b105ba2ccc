"""The ledger on the real store and Kafka: once-only effects with no window, refusals, crash recovery."""

from __future__ import annotations

import asyncio

import pytest

from account_service.balance_state import current_balances
from account_service.ledger import LedgerService
from account_service.memory import LedgerMemory
from account_service.store import CHARGES, INDEXES, JOURNAL, SUBSCRIBERS, TOPUPS
from mobi_contracts import Envelope, Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.network import UsageRecorded
from mobi_contracts.events.payment import TopupRecorded
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import kafka_access, make_topic, read_all, topup_recorded, usage_recorded

pytestmark = pytest.mark.integration
A, B = "84901110001", "84901110002"


def topup(subject: str, amount: int, topup_id: str) -> TopupRecorded:
    return topup_recorded(subject, amount, topup_id, method="card_domestic", correlation_id=f"c-{topup_id}")


def call(subject: str, charge: int, usage_id: str) -> UsageRecorded:
    return usage_recorded(subject, charge, usage_id)


class FailingOncePublisher(EventPublisher):
    """The real publisher, made to fail its next publish: a crash after the state write."""

    fail_next = False

    async def publish_serialized(self, entries: object) -> None:  # type: ignore[override]
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("process died before publishing")
        await super().publish_serialized(entries)  # type: ignore[arg-type]


@pytest.fixture
async def topic(unique: str) -> Topic:
    return await make_topic(f"test.account-events.{unique}", (BalanceChanged, BalanceChangeRejected))


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, topic: Topic) -> LedgerService:
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_many(
        [
            {"_id": A, "plan": "prepaid", "status": "active"},
            {"_id": B, "plan": "prepaid", "status": "active"},
        ]
    )
    return LedgerService(store, publisher, topic)


async def main_balance(store: Store, msisdn: str) -> int:
    """The current main balance: the journal's, whatever the snapshot."""
    return (await current_balances(store, msisdn)).main


async def test_a_topup_credits_once_even_when_replayed_or_recorded_again_under_a_new_event_id(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    first = topup(A, 50_000, "T1")
    await ledger.apply([first])
    await ledger.apply([first])  # redelivered
    await ledger.apply([topup(A, 50_000, "T1")])  # same top-up, new event id
    assert await main_balance(store, A) == 50_000
    assert await store[JOURNAL].count_documents({"msisdn": A}) == 1
    history = await store[TOPUPS].find({"msisdn": A}).to_list()
    assert [(h["_id"], h["amount_vnd"], h["balance_after"]) for h in history] == [("T1", 50_000, 50_000)]
    published = await read_all(topic.name, expect=3, timeout=3)
    assert len({r.value for r in published}) == 1, (
        "replays republish the same BalanceChanged, never a new one"
    )


async def test_usage_beyond_the_balance_is_refused_and_changes_nothing(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([topup(B, 1_000, "T2")])
    await ledger.apply([call(B, 2_500, "U1")])
    assert await main_balance(store, B) == 1_000
    assert await store[CHARGES].count_documents({"msisdn": B}) == 0
    records = await read_all(topic.name, expect=2)
    types = [dict(r.headers)["event-type"].decode() for r in records]
    assert types == ["BalanceChanged", "BalanceChangeRejected"]


async def test_one_batch_applies_each_subscribers_events_in_order(
    ledger: LedgerService, store: Store
) -> None:
    batch: list[Envelope] = [
        topup(A, 10_000, "T3"),
        call(A, 4_000, "U2"),
        call(A, 7_000, "U3"),
        topup(B, 3_000, "T4"),
    ]
    await ledger.apply(batch)
    # 10 000 - 4 000 = 6 000; the 7 000 call is refused; B gets 3 000.
    assert await main_balance(store, A) == 6_000
    assert await main_balance(store, B) == 3_000
    charges = await store[CHARGES].find({"msisdn": A}).to_list()
    assert [c["_id"] for c in charges] == ["U2"]


async def test_a_crash_between_the_balance_write_and_publishing_loses_and_doubles_nothing(
    store: Store, topic: Topic, ledger: LedgerService
) -> None:
    failing = FailingOncePublisher(kafka_access(), "tests")
    await failing.start()
    try:
        crashing = LedgerService(store, failing, topic)
        event = topup(A, 20_000, "T5")
        failing.fail_next = True
        with pytest.raises(RuntimeError, match="died"):
            await crashing.apply([event])
        assert await main_balance(store, A) == 20_000  # the journal insert happened
        await crashing.apply([event])  # the batch comes again after the restart
    finally:
        await failing.stop()
    assert await main_balance(store, A) == 20_000
    records = await read_all(topic.name, expect=1)
    assert len(records) == 1 and records[0].key == A.encode()
    assert await store[TOPUPS].count_documents({"_id": "T5"}) == 1


async def test_a_state_another_writer_extended_is_decided_on_again_instead_of_overwritten(
    ledger: LedgerService, store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    await ledger.apply([topup(A, 1_000, "T6")])
    other = LedgerService(store, publisher, topic)  # a rebalance overlap: it decides seq 2
    await other.apply([topup(A, 500, "T6b")])
    await ledger.apply([topup(A, 2_000, "T7")])  # on its remembered seq 1: meets seq 2
    assert await main_balance(store, A) == 3_500
    seqs = [(d["_id"], d["seq"]) async for d in store[JOURNAL].find({"msisdn": A}).sort("seq", 1)]
    assert seqs == [("topup:T6", 1), ("topup:T6b", 2), ("topup:T7", 3)]


async def test_a_replay_long_after_the_original_is_still_refused(ledger: LedgerService, store: Store) -> None:
    # The old guard remembered the last 200 applied ids per subscriber; the journal has no window.
    await ledger.apply([topup(A, 500_000, "T-old")])
    for start in range(0, 250, 50):
        await ledger.apply([call(A, 100, f"U-many-{n}") for n in range(start, start + 50)])
    before = await main_balance(store, A)
    await ledger.apply([topup(A, 500_000, "T-old")])
    assert await main_balance(store, A) == before == 500_000 - 250 * 100
    assert await store[JOURNAL].count_documents({"_id": "topup:T-old"}) == 1


async def test_a_crash_between_the_journal_and_publishing_is_completed_once_on_redelivery(
    ledger: LedgerService, store: Store, topic: Topic
) -> None:
    await ledger.apply([topup(A, 10_000, "T8")])
    original = ledger._project

    async def dies(applied: object) -> None:
        raise RuntimeError("process died after the journal insert")

    ledger._project = dies  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="died"):
        await ledger.apply([topup(A, 5_000, "T9")])
    ledger._project = original  # type: ignore[method-assign]
    assert await main_balance(store, A) == 15_000  # journaled: decided, whatever else was lost
    assert await store[TOPUPS].count_documents({"_id": "T9"}) == 0
    await ledger.apply([topup(A, 5_000, "T9"), topup(A, 1_000, "T10")])  # redelivered, with more
    assert await main_balance(store, A) == 16_000
    seqs = [d["seq"] async for d in store[JOURNAL].find({"msisdn": A}).sort("seq", 1)]
    assert seqs == [1, 2, 3]
    assert await store[TOPUPS].count_documents({"_id": {"$in": ["T9", "T10"]}}) == 2
    records = await read_all(topic.name, expect=3)
    assert len({r.value for r in records}) == 3, "each BalanceChanged once, none lost"


async def test_a_batch_mixing_replays_and_new_events_applies_only_the_new_ones_in_order(
    ledger: LedgerService, store: Store
) -> None:
    await ledger.apply([topup(B, 1_000, "T11"), topup(B, 2_000, "T12")])
    await ledger.apply(
        [topup(B, 4_000, "T13"), topup(B, 1_000, "T11"), call(B, 6_500, "U20"), topup(B, 2_000, "T12")]
    )
    assert await main_balance(store, B) == 500
    journal = [d async for d in store[JOURNAL].find({"msisdn": B}).sort("seq", 1)]
    assert [(d["_id"], d["seq"]) for d in journal] == [
        ("topup:T11", 1),
        ("topup:T12", 2),
        ("topup:T13", 3),
        ("usage:U20", 4),
    ]


async def test_every_balance_equals_the_sum_of_its_journal_entries(
    ledger: LedgerService, store: Store
) -> None:
    await ledger.apply([topup(A, 9_000, "T14"), call(A, 2_000, "U21"), call(A, 99_000, "U22")])
    await ledger.apply([topup(A, 9_000, "T14"), call(A, 1_000, "U23")])
    journal = await store[JOURNAL].find({"msisdn": A}).to_list()
    total = sum(e["delta"] for d in journal for e in d["entries"] if e["account"] == "main")
    assert total == await main_balance(store, A) == 6_000


async def test_two_lanes_deciding_on_the_same_subscribers_at_once_take_turns_on_the_journal_without_a_retry(
    ledger: LedgerService, store: Store, publisher: EventPublisher, topic: Topic
) -> None:
    """The top-up lane and the usage lane (two consumer groups) decide on the same subscribers
    at the same time: each refusal of a taken seq is decided again on the journal at once, so
    neither lane's batch fails (a failed batch waits out seconds of backoff), and every event
    is in the journal once, each subscriber's seqs unbroken."""
    usage_lane = LedgerService(store, publisher, topic)
    await ledger.apply([topup(A, 100_000, "L0-A"), topup(B, 100_000, "L0-B")])

    async def top_ups() -> None:
        for n in range(1, 9):
            await ledger.apply([topup(A, 1_000, f"L{n}-A"), topup(B, 1_000, f"L{n}-B")])

    async def calls() -> None:
        for n in range(8):
            await usage_lane.apply(
                [call(A, 300, f"U{n}-A1"), call(B, 300, f"U{n}-B"), call(A, 200, f"U{n}-A2")]
            )

    await asyncio.gather(top_ups(), calls())
    assert await main_balance(store, A) == 100_000 + 8 * 1_000 - 8 * 500
    assert await main_balance(store, B) == 100_000 + 8 * 1_000 - 8 * 300
    for number, decisions in ((A, 1 + 8 + 16), (B, 1 + 8 + 8)):
        seqs = [d["seq"] async for d in store[JOURNAL].find({"msisdn": number}).sort("seq", 1)]
        assert seqs == list(range(1, decisions + 1))


async def test_two_lanes_of_one_process_take_turns_and_never_decide_on_a_state_the_other_moved(
    store: Store, publisher: EventPublisher, topic: Topic, ledger: LedgerService
) -> None:
    """Lanes sharing the process's memory take turns from reading a state to journaling on it:
    however their batches interleave, neither is refused by the journal (no careful settling,
    one store round trip per event), and the balances are the same as in one lane."""
    careful: list[str] = []

    class Lane(LedgerService):
        async def _settle_carefully(self, sub, now):  # type: ignore[no-untyped-def]
            careful.append(sub.start.state.msisdn)
            await super()._settle_carefully(sub, now)

    memory = LedgerMemory()
    top_up_lane, usage_lane = (
        Lane(store, publisher, topic, memory=memory),
        Lane(store, publisher, topic, memory=memory),
    )
    await top_up_lane.apply([topup(A, 100_000, "M0-A"), topup(B, 100_000, "M0-B")])

    async def top_ups() -> None:
        for n in range(1, 9):
            await top_up_lane.apply([topup(A, 1_000, f"M{n}-A"), topup(B, 1_000, f"M{n}-B")])

    async def calls() -> None:
        for n in range(8):
            await usage_lane.apply([call(A, 300, f"V{n}-A"), call(B, 300, f"V{n}-B")])

    await asyncio.gather(top_ups(), calls())
    assert careful == []
    assert await main_balance(store, A) == await main_balance(store, B) == 100_000 + 8 * 700
