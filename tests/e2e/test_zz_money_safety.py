"""No card number is ever stored, logged, put in an event or a metric label.

Runs last in the e2e suite (file name), after every card flow has run, and runs one of
each test card itself so it stands alone. Scans every database of the store, every Kafka
topic, every log file and the metrics for Luhn-valid 13-19 digit numbers, standing alone
(not inside a longer run of letters and digits such as a UUID or a hex digest), with a card
scheme's prefix and length: Visa 4 (13/16/19), Mastercard 51-55 and 2221-2720 (16), Amex
34/37 (15), JCB 3528-3589, UnionPay 62, NAPAS 9704 (16-19). Prefixes keep 13-digit
millisecond timestamps (which start with 1) from counting.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from servicekit.testing import kafka_client_options

from .conftest import ACCOUNT, PAYMENT, header_login
from .payments import APPROVED_NCB, APPROVED_VISA, DECLINED_VISA, NO_FUNDS_VISA, VISA_3DS, pay, start_topup

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".cache" / "logs"
# A number standing alone: 13-19 digits in a row, or printed in groups as cards are
# (4-4-4-4[-3], or Amex 4-6-5). Not digits inside identifiers (UUIDs, hex digests) or the
# fraction of a decimal number (metrics).
_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z.-])"
    r"(?:\d{13,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5})"
    r"(?![0-9A-Za-z-]|\.\d)"
)
_SCHEMES = [
    (re.compile(r"^4"), {13, 16, 19}),
    (re.compile(r"^(5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)"), {16}),
    (re.compile(r"^3[47]"), {15}),
    (re.compile(r"^35(2[89]|[3-8]\d)"), {16, 17, 18, 19}),
    (re.compile(r"^(62|9704)"), {16, 17, 18, 19}),
]


def luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_numbers(text: str) -> set[str]:
    found = set()
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        card_like = any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _SCHEMES)
        if card_like and luhn_valid(digits):
            found.add(digits)
    return found


def test_the_scanner_finds_a_planted_card_number_and_ignores_timestamps_and_phone_numbers() -> None:
    assert card_numbers('{"note": "paid with 4111 1111 1111 1111"}') == {"4111111111111111"}
    assert card_numbers("x=9704198526191432198;") == {"9704198526191432198"}
    assert card_numbers("startTimeMs: 1795632926840 msisdn 84901234567 txn 7956397171") == set()
    assert card_numbers('"digest": "ab4111111111111111cd"') == set()  # inside a hex identifier
    assert card_numbers('"causation_id": "62560830-2688-5206-b9e3-4b556e9633cc"') == set()  # a UUID
    assert card_numbers("Amex 3782 822463 10005.") == {"378282246310005"}
    assert card_numbers("latency_sum 0.4345281400001113") == set()


async def test_no_card_number_is_in_the_store_the_topics_or_the_logs(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    for card in (APPROVED_VISA, VISA_3DS, DECLINED_VISA, NO_FUNDS_VISA, APPROVED_NCB):
        body = (
            await start_topup(
                carrier, auth, 10_000, method="domestic" if card.startswith("9704") else "international"
            )
        ).json()
        await pay(body["payment_url"], card)
    leaks = {
        "store": card_numbers(await _dump_store()),
        "kafka": card_numbers(await _dump_topics()),
        "logs": card_numbers(_dump_logs()),
        "metrics": card_numbers(await _dump_metrics()),
    }
    assert leaks == {"store": set(), "kafka": set(), "logs": set(), "metrics": set()}


async def _dump_store() -> str:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:27017/")
    parts = []
    for name in await client.list_database_names():
        db = client[name]
        for collection in await db.list_collection_names():
            async for doc in db[collection].find({}):
                parts.append(json.dumps(doc, default=str, ensure_ascii=False))
    await client.close()
    return "\n".join(parts)


async def _dump_topics() -> str:
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, auto_offset_reset="earliest", **kafka_client_options()
    )
    await consumer.start()
    parts: list[str] = []
    try:
        topics = [t for t in await consumer.topics() if not t.startswith("__")]
        consumer.subscribe(topics)
        # With hundreds of topics (tests, benchmarks) the first assignment can take longer than
        # one poll: read until something came and then a poll comes back empty.
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batch and (parts or asyncio.get_running_loop().time() > deadline):
                break
            for records in batch.values():
                for r in records:
                    parts.append((r.key or b"").decode(errors="replace"))
                    parts.append((r.value or b"").decode(errors="replace"))
                    parts.extend(v.decode(errors="replace") for _, v in r.headers or ())
    finally:
        await consumer.stop()
    assert parts, "the topics should not be empty after the payment suite"
    return "\n".join(parts)


def _dump_logs() -> str:
    files = sorted(LOGS.glob("*.log")) + sorted(LOGS.glob("*.jsonl"))
    assert files, f"no logs under {LOGS}"
    return "\n".join(f.read_text(errors="replace") for f in files)


async def _dump_metrics() -> str:
    async with httpx.AsyncClient(trust_env=False) as client:
        pages = [await client.get(f"{base}/metrics") for base in (ACCOUNT, PAYMENT, "http://127.0.0.1:8192")]
    return "\n".join(p.text for p in pages)
