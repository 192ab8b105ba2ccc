"""Feedback tickets on the real store, Kafka and Redis: events go out with the ticket (and
carry neither the subscriber's words nor the reply), the rate limit holds under concurrency,
a retried request files one ticket, one answer per version wins, and a number that changed
hands hides the previous owner's tickets."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from mobi_contracts import parse_event
from mobi_contracts.events.stores import FeedbackAnsweredV2, FeedbackReceivedV2
from mobi_contracts.events.subscriber import SubscriberOwnerChanged, SubscriberOwnerChangedData
from servicekit.errors import ApiError
from servicekit.kafka.publisher import EventPublisher
from servicekit.limits import WindowLimiter
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.redis_client import create_redis
from servicekit.tenancy import at_store_precision
from servicekit.testing import eventually, make_topic, read_all
from stores_service.feedback import FeedbackDesk, decode_cursor
from stores_service.store import ANSWERS, FEEDBACK, INDEXES
from stores_service.tenancy import TenancyEnds

pytestmark = pytest.mark.integration


@pytest.fixture
async def desk(store: Store, redis: Redis, publisher: EventPublisher, unique: str) -> FeedbackDesk:
    await store.ensure_indexes(INDEXES)
    topic = await make_topic(f"test.stores-events.{unique}", (FeedbackReceivedV2, FeedbackAnsweredV2))
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


async def test_a_ticket_and_its_answer_go_out_as_events_keyed_by_the_subscriber_without_their_words(
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
    assert [type(e) for e in events] == [FeedbackReceivedV2, FeedbackAnsweredV2]
    assert {r.key for r in records} == {msisdn.encode()}
    assert events[1].data.ticket == ticket["ticket"] and events[1].data.has_reply is True
    on_the_bus = b"".join(r.value for r in records).decode()
    for private in ("Sóng yếu", "Cầu Giấy", "tăng cường", "trạm phát"):
        assert private not in on_the_bus, "the subscriber's words and the reply stay in the store"

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


class ReadTogether:
    """The store, except that reads of tickets wait for each other: every answer then decides
    on the same version of the ticket, as agents answering at the same moment would."""

    def __init__(self, store: Store, parties: int) -> None:
        self.store = store
        self.barrier = asyncio.Barrier(parties)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __getitem__(self, name: str) -> Any:
        collection, barrier = self.store[name], self.barrier
        if name != FEEDBACK:
            return collection

        class Together:
            def __getattr__(self, attr: str) -> Any:
                return getattr(collection, attr)

            async def find_one(self, *args: Any, **kwargs: Any) -> Any:
                doc = await collection.find_one(*args, **kwargs)
                await barrier.wait()
                return doc

        return Together()


async def test_concurrent_answers_to_one_version_let_one_win_and_announce_it_once(
    desk: FeedbackDesk, store: Store, msisdn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ticket = await desk.file(msisdn, FIELDS, key=None, correlation_id="t")

    async def answer(n: int) -> dict[str, Any]:
        return await desk.answer(
            ticket["ticket"],
            reply=f"Trả lời số {n}",
            status="answered",
            agent=f"agent{n}",
            correlation_id="t",
        )

    with monkeypatch.context() as patched:
        patched.setattr(desk, "store", ReadTogether(store, 8))
        results = await asyncio.gather(*(answer(n) for n in range(8)), return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, ApiError)]
    assert len(won) == 1 and len(lost) == 7, results
    assert all(e.status == 409 and e.code == "ticket_changed" for e in lost)
    stored = await store[FEEDBACK].find_one({"_id": ticket["ticket"]})
    assert stored is not None and [r["text"] for r in stored["replies"]] == [won[0]["replies"][0]["text"]]
    records = await read_all(desk.topic.name, expect=9, timeout=4)
    answered = [e for e in map(parse_event, (r.value for r in records)) if isinstance(e, FeedbackAnsweredV2)]
    assert len(answered) == 1
    again = await desk.answer(ticket["ticket"], reply=None, status="closed", agent="ops", correlation_id="t")
    assert again["status"] == "closed", "the next version is answered as usual"


async def test_an_answer_a_crash_left_before_the_ticket_is_completed_by_the_periodic_pass(
    desk: FeedbackDesk, store: Store, msisdn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ticket = await desk.file(msisdn, FIELDS, key=None, correlation_id="t")

    async def crash(claim: dict[str, Any]) -> None:
        raise RuntimeError("killed after the claim")

    with monkeypatch.context() as patched:
        patched.setattr(desk, "_complete", crash)
        with pytest.raises(RuntimeError):
            await desk.answer(
                ticket["ticket"], reply="Đã xử lý", status="answered", agent="a", correlation_id="t"
            )
    assert (await store[FEEDBACK].find_one({"_id": ticket["ticket"]}) or {})["status"] == "received"
    assert await desk.complete_answers(older_than=timedelta(0)) == 1
    doc = await store[FEEDBACK].find_one({"_id": ticket["ticket"]})
    assert doc is not None and doc["status"] == "answered" and doc["answers"] == 1
    claim = await store[ANSWERS].find_one({"_id": f"{ticket['ticket']}:1"})
    assert claim is not None and claim["outbox_pending"] is False
    records = await read_all(desk.topic.name, expect=2)
    assert [type(parse_event(r.value)) for r in records] == [FeedbackReceivedV2, FeedbackAnsweredV2]
    assert await desk.complete_answers(older_than=timedelta(0)) == 0


def owner_changed(msisdn: str, at: datetime, seq: int = 2) -> SubscriberOwnerChanged:
    return SubscriberOwnerChanged.new(
        subject=msisdn,
        producer="account-service",
        correlation_id="ops",
        data=SubscriberOwnerChangedData(
            change_id=f"{msisdn}:{seq}", status="active", plan="prepaid", owner_since=at, changed_at=at
        ),
    )


async def test_a_number_that_changed_hands_hides_the_previous_owners_tickets_and_refuses_answers(
    desk: FeedbackDesk, store: Store, msisdn: str
) -> None:
    _, old = await desk.file(msisdn, FIELDS, key=None, correlation_id="t")
    boundary = at_store_precision(datetime.now(UTC) + timedelta(milliseconds=5))
    await asyncio.sleep(0.01)
    tenancies = TenancyEnds(store)
    await tenancies.apply([owner_changed(msisdn, boundary)])
    assert (await desk.mine(msisdn, limit=10, after=None))["items"] == []
    with pytest.raises(ApiError) as refused:
        await desk.answer(old["ticket"], reply="late", status="answered", agent="a", correlation_id="t")
    assert refused.value.status == 409 and refused.value.code == "tenancy_ended"

    _, new = await desk.file(msisdn, {**FIELDS, "text": "Chủ mới góp ý"}, key=None, correlation_id="t")
    await tenancies.apply([owner_changed(msisdn, boundary)])  # a replay
    await tenancies.apply([owner_changed(msisdn, boundary - timedelta(days=30), seq=1)])  # an older one
    mine = await desk.mine(msisdn, limit=10, after=None, owner_since=boundary)
    assert [t["ticket"] for t in mine["items"]] == [new["ticket"]]
    answered = await desk.answer(new["ticket"], reply="ok", status="answered", agent="a", correlation_id="t")
    assert answered["status"] == "answered"


async def test_the_app_shows_a_new_owner_no_ticket_from_before_their_tenancy_even_unconsumed(
    desk: FeedbackDesk, msisdn: str
) -> None:
    _, old = await desk.file(msisdn, FIELDS, key=None, correlation_id="t")
    await asyncio.sleep(0.01)
    owner_since = at_store_precision(datetime.now(UTC))
    assert (await desk.mine(msisdn, limit=10, after=None, owner_since=owner_since))["items"] == []
    assert [t["ticket"] for t in (await desk.mine(msisdn, limit=10, after=None))["items"]] == [old["ticket"]]
