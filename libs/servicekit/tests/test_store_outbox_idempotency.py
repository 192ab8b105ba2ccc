"""Store primitives, the outbox relay and Idempotency-Key handling on the real store and Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mobi_contracts.events.payment import TopupRecorded
from servicekit.errors import ApiError
from servicekit.idempotency import IdempotencyKeys, fingerprint
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Conflict, Store, Update, insert_versioned, save_versioned
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending
from servicekit.testing import make_topic, read_all, topup_recorded

pytestmark = pytest.mark.integration


def topup(n: int) -> TopupRecorded:
    return topup_recorded("84901234567", 1000, f"t{n}", correlation_id="c")


async def test_of_many_concurrent_claims_exactly_one_wins(store: Store) -> None:
    wins = await asyncio.gather(*(store.claim("claims", "card-1", by=i) for i in range(30)))
    assert wins.count(True) == 1


async def test_a_versioned_write_fails_when_someone_wrote_since_the_read(store: Store) -> None:
    await insert_versioned(store, "docs", {"_id": "d", "v": 1})
    await save_versioned(store, "docs", "d", 1, {"v": 2})
    with pytest.raises(Conflict):
        await save_versioned(store, "docs", "d", 1, {"v": 3})
    with pytest.raises(Conflict):
        await insert_versioned(store, "docs", {"_id": "d", "v": 9})
    assert (await store["docs"].find_one({"_id": "d"})) == {"_id": "d", "v": 2, "rev": 2}


async def test_reads_and_updates_by_id_work_the_same_on_either_store(store: Store) -> None:
    await store["docs"].insert_many([{"_id": i, "n": 0} for i in range(40)])
    found = await store.find_by_ids("docs", [3, 5, 99, 3])
    assert set(found) == {3, 5}
    matched = await store.update_each(
        "docs",
        [Update({"_id": i}, {"$inc": {"n": 1}}) for i in range(40)]
        + [Update({"_id": 99}, {"$set": {"n": 1}})],
    )
    assert matched == 40
    assert await store["docs"].count_documents({"n": 1}) == 40


async def test_insert_new_skips_existing_ids_and_counts_the_new(store: Store) -> None:
    assert await store.insert_new("rows", [{"_id": 1}, {"_id": 2}]) == 2
    assert await store.insert_new("rows", [{"_id": 2}, {"_id": 3}, {"_id": 1}]) == 1


async def test_insert_fresh_returns_the_documents_that_were_new_whatever_their_order(store: Store) -> None:
    await store.insert_all("claims", [{"_id": "b"}, {"_id": "d"}])
    fresh = await store.insert_fresh("claims", [{"_id": x, "n": i} for i, x in enumerate("abcde")])
    assert [doc["_id"] for doc in fresh] == ["a", "c", "e"]
    assert await store["claims"].count_documents({}) == 5


async def test_insert_run_stops_at_the_first_duplicate_and_says_where_it_stood(store: Store) -> None:
    await store.insert_all("journal", [{"_id": "c"}])
    assert await store.insert_run("journal", [{"_id": x} for x in "abcde"]) == 2
    assert sorted(d["_id"] for d in await store["journal"].find({}).to_list()) == ["a", "b", "c"]
    assert await store.insert_run("journal", [{"_id": "f"}, {"_id": "g"}]) == 2


async def test_insert_run_inserts_nothing_after_a_duplicate_however_long_the_run(store: Store) -> None:
    """FerretDB 1.24 inserts an ordered insert in chunks of 100 and goes on with the next chunk
    after one failed (300 documents, a duplicate at 150: 200-299 inserted too). A ledger's run
    of decisions must stop at its first refusal: nothing after it may be written."""
    await store["runs"].create_index([("m", 1), ("s", 1)], unique=True)
    await store["runs"].insert_one({"_id": "taken", "m": "M", "s": 150})
    docs = [{"_id": f"d{i:03d}", "m": "M", "s": i} for i in range(300)]
    assert await store.insert_run("runs", docs) == 150
    stored = sorted(d["_id"] for d in await store["runs"].find({"_id": {"$ne": "taken"}}).to_list())
    assert stored == [f"d{i:03d}" for i in range(150)]


async def test_the_sweeper_relays_what_a_crash_left_and_clears_it(
    store: Store, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.outbox.{unique}", (TopupRecorded,))
    events = [topup(1), topup(2)]
    entries = outbox_entries(topic, events)
    past = datetime.now(UTC) - timedelta(minutes=1)
    # A state change committed with its events, then the process died before relaying.
    await insert_versioned(
        store, "finals", {"_id": "p1", "status": "succeeded", **with_pending({}, entries, past)}
    )
    relay = OutboxRelay(store, publisher, "tests", "finals")
    assert await relay.sweep() == 1
    records = await read_all(topic.name, expect=2)
    assert sorted(r.value for r in records) == sorted(e.model_dump_json().encode() for e in events)
    doc = await store["finals"].find_one({"_id": "p1"})
    assert (
        doc is not None
        and doc["outbox"] == []
        and doc["outbox_pending"] is False
        and doc["status"] == "succeeded"
    )
    assert await relay.sweep() == 0


async def test_the_sweeper_leaves_fresh_entries_to_the_writer_relaying_them(
    store: Store, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.outbox.fresh.{unique}", (TopupRecorded,))
    entries = outbox_entries(topic, [topup(3)])
    await insert_versioned(store, "finals", {"_id": "p2", **with_pending({}, entries, datetime.now(UTC))})
    assert await OutboxRelay(store, publisher, "tests", "finals").sweep(older_than=timedelta(seconds=30)) == 0


async def test_the_sweeper_takes_the_oldest_pending_documents_first(
    store: Store, publisher: EventPublisher, unique: str
) -> None:
    topic = await make_topic(f"test.outbox.oldest.{unique}", (TopupRecorded,))
    now = datetime.now(UTC)
    # Inserted newest first, so an unordered scan would meet the old ones last.
    for age in range(1, 31):
        entries = outbox_entries(topic, [topup(100 + age)])
        since = now - timedelta(minutes=age)
        await insert_versioned(store, "finals", {"_id": f"p-{age:02d}", **with_pending({}, entries, since)})
    relay = OutboxRelay(store, publisher, "tests", "finals")
    assert await relay.sweep(limit=5) == 5
    left = {d["_id"] for d in await store["finals"].find({"outbox_pending": True}).to_list()}
    assert left == {f"p-{age:02d}" for age in range(1, 26)}, "the five oldest (26-30 min) went first"


async def test_an_idempotency_key_returns_the_stored_response_and_refuses_another_body(store: Store) -> None:
    keys = IdempotencyKeys(store)
    body = {"amount_vnd": 100_000}
    assert await keys.begin("topup", "84901234567", "key-000001", fingerprint(body)) is None
    with pytest.raises(ApiError) as running:
        await keys.begin("topup", "84901234567", "key-000001", fingerprint(body))
    assert running.value.status == 409
    await keys.complete("topup", "84901234567", "key-000001", 201, {"payment_id": "PAY1"})
    stored = await keys.begin("topup", "84901234567", "key-000001", fingerprint(body))
    assert stored is not None and (stored.status, stored.body) == (201, {"payment_id": "PAY1"})
    with pytest.raises(ApiError) as other:
        await keys.begin("topup", "84901234567", "key-000001", fingerprint({"amount_vnd": 1}))
    assert other.value.status == 422
    # Keys are per owner: another subscriber's identical key is a different request.
    assert await keys.begin("topup", "84901234568", "key-000001", fingerprint(body)) is None


async def test_a_released_key_can_be_used_again(store: Store) -> None:
    keys = IdempotencyKeys(store)
    assert await keys.begin("topup", "84901234567", "key-000002", "f") is None
    await keys.release("topup", "84901234567", "key-000002")
    assert await keys.begin("topup", "84901234567", "key-000002", "f") is None


async def test_a_key_whose_request_crashed_is_taken_over_by_one_retry_after_a_while(store: Store) -> None:
    keys = IdempotencyKeys(store, stale_after=timedelta(seconds=0.2))
    assert await keys.begin("pay", "84901234567", "key-crashed-1", "fp") is None  # then the process died
    with pytest.raises(ApiError) as running:
        await keys.begin("pay", "84901234567", "key-crashed-1", "fp")
    assert running.value.code == "request_in_progress"
    await asyncio.sleep(0.3)
    retries = await asyncio.gather(
        *(keys.begin("pay", "84901234567", "key-crashed-1", "fp") for _ in range(5)), return_exceptions=True
    )
    assert retries.count(None) == 1, "exactly one retry takes the stale claim over"
    assert all(isinstance(r, ApiError) and r.code == "request_in_progress" for r in retries if r is not None)


async def test_old_keys_are_deleted_by_the_cleanup_and_recent_ones_kept(store: Store) -> None:
    keys = IdempotencyKeys(store, keep=timedelta(hours=24))
    await keys.begin("pay", "84901234567", "key-old-0001", "fp")
    await keys.begin("pay", "84901234567", "key-new-0001", "fp")
    await keys.complete("pay", "84901234567", "key-old-0001", 201, {"ok": True})
    await store["idempotency_keys"].update_one(
        {"_id": "pay:84901234567:key-old-0001"},
        {"$set": {"created_at": datetime.now(UTC) - timedelta(days=2)}},
    )
    assert await keys.delete_expired() == 1
    remaining = [d["_id"] for d in await store["idempotency_keys"].find({}).to_list()]
    assert remaining == ["pay:84901234567:key-new-0001"]


async def test_many_ids_are_found_as_surely_as_a_few(store: Store) -> None:
    await store["many"].insert_many([{"_id": f"d{n}", "n": n} for n in range(700)])
    few = await store.find_by_ids("many", ["d1", "d5", "missing"])
    many = await store.find_by_ids("many", [f"d{n}" for n in range(0, 1400, 2)])  # half exist
    assert sorted(few) == ["d1", "d5"]
    assert sorted(many) == sorted(f"d{n}" for n in range(0, 700, 2))
    assert many["d698"]["n"] == 698
