"""Reassembly bookkeeping, the rate limiter and the message store, with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from mobi_smpp import Concatenation
from smsc_sandbox.reassembly import Part, Reassembler
from smsc_sandbox.store import MessageRecord, MessageStore, match_key
from smsc_sandbox.throttle import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEY = ("mymobifone", "MobiFone", "84901234567", 7, 2, 8)


def test_message_completes_when_the_last_part_arrives_in_any_order() -> None:
    reassembler = Reassembler()
    assert reassembler.add(KEY, Concatenation(7, 2, 2), Part(b"world", "id2")) is None
    done = reassembler.add(KEY, Concatenation(7, 2, 1), Part(b"hello ", "id1"))
    assert done is not None
    assert (done.payload, done.message_ids) == (b"hello world", ["id1", "id2"])
    assert reassembler.pending == 0


def test_a_resent_part_replaces_the_earlier_copy() -> None:
    reassembler = Reassembler()
    reassembler.add(KEY, Concatenation(7, 2, 1), Part(b"first try ", "id1"))
    reassembler.add(KEY, Concatenation(7, 2, 1), Part(b"retry ", "id1b"))
    done = reassembler.add(KEY, Concatenation(7, 2, 2), Part(b"end", "id2"))
    assert done is not None
    assert (done.payload, done.message_ids) == (b"retry end", ["id1b", "id2"])


def test_incomplete_messages_are_forgotten_after_the_ttl() -> None:
    clock = Clock()
    reassembler = Reassembler(ttl_seconds=60, clock=clock)
    reassembler.add(KEY, Concatenation(7, 2, 1), Part(b"orphan", "id1"))
    clock.now += 61
    other = (*KEY[:3], 8, 2, 8)
    reassembler.add(other, Concatenation(8, 2, 1), Part(b"x", "id3"))
    assert reassembler.pending == 1


def test_bucket_passes_a_burst_up_to_the_rate_then_refills_over_time() -> None:
    clock = Clock()
    bucket = TokenBucket(3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 1 / 3
    assert [bucket.try_acquire() for _ in range(2)] == [True, False]


def test_fractional_rate_allows_one_message_per_interval() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, clock=clock)
    assert [bucket.try_acquire(), bucket.try_acquire()] == [True, False]
    clock.now += 2
    assert bucket.try_acquire()


def test_msisdn_forms_share_one_match_key() -> None:
    assert {match_key(n) for n in ("0901234567", "84901234567", "+84 90-123.4567")} == {"84901234567"}


def test_store_appends_each_message_to_the_record_file_and_forgets_the_oldest(tmp_path: Path) -> None:
    record_file = tmp_path / "messages.jsonl"
    store = MessageStore(max_messages=2, record_file=record_file)
    for n in range(3):
        store.add(
            MessageRecord(
                id=str(n),
                message_ids=[str(n)],
                source="MobiFone",
                destination="84901234567",
                text=f"Mã {n}",
                data_coding=8,
                parts=1,
                received_at=datetime.now(UTC),
                system_id="mymobifone",
            )
        )
    assert [r.id for r in store.newest()] == ["2", "1"]
    lines = [orjson.loads(line) for line in record_file.read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == ["Mã 0", "Mã 1", "Mã 2"]
