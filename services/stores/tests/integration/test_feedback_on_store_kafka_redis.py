"""Feedback tickets on the real store, Kafka and Redis: events go out with the ticket, the
rate limit holds under concurrency, a retried request files one ticket."""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.asyncio import Redis

from mobi_contracts import parse_event
from mobi_contracts.events.stores import FeedbackAnswered, FeedbackReceived
from servicekit.errors import ApiError
from servicekit.kafka.publisher import EventPublisher
from servicekit.limits import WindowLimiter
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.redis_client import create_redis
from servicekit.testing import eventually, make_topic, read_all
from stores_service.feedback import FeedbackDesk, decode_cursor
from stores_service.store import FEEDBACK, INDEXES

pytestmark = pytest.mark.integration


@pytest.fixture
async def desk(store: Store, redis: Redis, publisher: EventPublisher, unique: str) -> FeedbackDesk:
    await store.ensure_indexes(INDEXES)
    topic = await make_topic(f"test.stores-events.{unique}", (FeedbackReceived, FeedbackAnswered))
    return FeedbackDesk(
        store=store,
        redis=redis,
        relay=OutboxRelay(store, publisher, "tests", FEEDBACK),
        topic=topic,
        service="tests",
        per_hour=3,
        per_day=5,
    )


@pytest.fixture
def msisdn() -> str:
    return "8477" + f"{random.randrange(10**7):07d}"


FIELDS = {"category": "network", "text": "Sóng yếu ở Cầu Giấy", "rating": 2, "app_version": "5.2.1",
          "device": None, "screen": "home"}  # fmt: skip


async def test_a_ticket_and_its_answer_go_out_as_events_keyed_by_the_subscriber(
    desk: FeedbackDesk, store: Store, msisdn: str
) -> None:
    status, ticket = await desk.file(msisdn, FIELDS, key=None, correlation_id="t1")
    assert status == 201 and ticket["status"] == "received"
    answered = await desk.answer(
        ticket["ticket"],
        reply="Đã tăng cường trạm phát",
        status="answered",
        agent="cskh.an",
        correlation_id="t2",
    )
    assert answered["status"] == "answered" and answered["replies"][0]["text"] == "Đã tăng cường trạm phát"
    records = await read_all(desk.topic.name, expect=2)
    events = [parse_event(r.value) for r in records]
    assert [type(e) for e in events] == [FeedbackReceived, FeedbackAnswered]
    assert {r.key for r in records} == {msisdn.encode()}
    assert events[1].data.ticket == ticket["ticket"] and events[1].data.reply == "Đã tăng cường trạm phát"

    async def relayed() -> bool:
        doc = await store[FEEDBACK].find_one({"_id": ticket["ticket"]})
        return doc is not None and doc["outbox"] == [] and doc["outbox_pending"] is False

    await eventually(relayed, timeout=5)
    mine = await desk.mine(msisdn, limit=10, after=None)
    assert [t["ticket"] for t in mine["items"]] == [ticket["ticket"]]
    assert mine["items"][0]["status"] == "answered"


async def test_a_closed_ticket_refuses_further_answers(desk: FeedbackDesk, msisdn: str) -> None:
    _, ticket = await desk.file(msisdn, FIELDS, key=None, correlation_id="t")
    await desk.answer(ticket["ticket"], reply=None, status="closed", agent="ops", correlation_id="t")
    with pytest.raises(ApiError) as refused:
        await desk.answer(ticket["ticket"], reply="late", status="answered", agent="ops", correlation_id="t")
    assert refused.value.status == 409


async def test_concurrent_submissions_never_exceed_the_hourly_limit(desk: FeedbackDesk, msisdn: str) -> None:
    results = await asyncio.gather(
        *(desk.file(msisdn, FIELDS, key=None, correlation_id=f"c{n}") for n in range(12)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, tuple)]
    limited = [r for r in results if isinstance(r, ApiError)]
    assert len(accepted) == 3 and len(limited) == 9
    assert all(e.status == 429 and int(e.headers["Retry-After"]) > 0 for e in limited)
    assert len((await desk.mine(msisdn, limit=50, after=None))["items"]) == 3


async def test_a_retry_with_the_same_key_files_one_ticket_and_one_event(
    desk: FeedbackDesk, msisdn: str
) -> None:
    first = await desk.file(msisdn, FIELDS, key="retry-key-0001", correlation_id="t")
    again = await desk.file(msisdn, FIELDS, key="retry-key-0001", correlation_id="t")
    assert first[0] == 201 and again[0] == 200 and again[1]["ticket"] == first[1]["ticket"]
    with pytest.raises(ApiError) as reused:
        await desk.file(msisdn, {**FIELDS, "text": "khác"}, key="retry-key-0001", correlation_id="t")
    assert reused.value.code == "idempotency_key_reused"
    records = await read_all(desk.topic.name, expect=2, timeout=3)
    assert len(records) == 1


async def test_pages_of_my_tickets_are_newest_first_without_gaps(desk: FeedbackDesk, msisdn: str) -> None:
    tickets = [(await desk.file(msisdn, FIELDS, key=None, correlation_id="t"))[1]["ticket"] for _ in range(3)]
    first = await desk.mine(msisdn, limit=2, after=None)
    second = await desk.mine(msisdn, limit=2, after=decode_cursor(first["next_cursor"]))
    seen = [t["ticket"] for t in first["items"] + second["items"]]
    assert sorted(seen) == sorted(tickets) and len(seen) == 3
    assert second["next_cursor"] is None


async def test_with_redis_unreachable_feedback_is_refused_not_unlimited(
    desk: FeedbackDesk, msisdn: str
) -> None:
    desk.limiter = WindowLimiter(create_redis("redis://127.0.0.1:1/0"))
    with pytest.raises(ApiError) as refused:
        await desk.file(msisdn, FIELDS, key=None, correlation_id="t")
    assert refused.value.status == 503
    assert (await desk.mine(msisdn, limit=5, after=None))["items"] == []
