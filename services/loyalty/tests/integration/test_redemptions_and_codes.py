"""Redemptions against the agreed protocol on the real Kafka (the granters' answers played
here), concurrent redemptions, and E-code pools hammered by concurrent claims."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis.asyncio import Redis

from loyalty_service.domain.wallet import Refused
from loyalty_service.handlers import loyalty_handler
from loyalty_service.ledger import Contended, PointsLedger, current_wallet
from loyalty_service.offers import Offers
from loyalty_service.programme import Programme
from loyalty_service.redemptions import Redemptions
from loyalty_service.store import ECODE_OWNERS, ECODES, LEDGER, REDEMPTIONS, WALLETS
from loyalty_service.tenancy import MembershipEnds
from mobi_contracts import Topic
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    RedemptionGranted,
    RedemptionGrantedData,
    RedemptionRefused,
    RedemptionRefusedData,
)
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from servicekit.errors import ApiError
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.testing import consuming, eventually, make_group, make_topic, read_all

from .conftest import make_offers

pytestmark = pytest.mark.integration
A, B = "84770000011", "84770000012"


async def balance(store: Store, msisdn: str) -> int:
    wallet = await current_wallet(store, msisdn)
    return wallet.points if wallet else -1


def refusal(redemption_id: str, cause: str) -> RedemptionRefused:
    return RedemptionRefused.new(
        subject=A,
        producer="account-service",
        correlation_id="c",
        data=RedemptionRefusedData(
            redemption_id=redemption_id,
            granter="account-service",
            cause_event_id=cause,
            reason="already_active",
            detail="played by the test",
            refused_at=datetime.now(UTC),
        ),
    )


def grant(redemption_id: str, cause: str) -> RedemptionGranted:
    return RedemptionGranted.new(
        subject=A,
        producer="vas-service",
        correlation_id="c",
        data=RedemptionGrantedData(
            redemption_id=redemption_id,
            granter="vas-service",
            cause_event_id=cause,
            granted_at=datetime.now(UTC),
        ),
    )


async def test_a_refused_redemption_gives_the_points_back_once_over_kafka(
    programme: Programme,
    redemptions: Redemptions,
    ends: MembershipEnds,
    store: Store,
    redis: Redis,
    publisher: EventPublisher,
    topic: Topic,
    unique: str,
) -> None:
    answers = await make_topic(
        f"test.grants.{unique}",
        (TopupRecorded, BillPaid, RedemptionGranted, RedemptionRefused),
        producer="account-service",
        also_produced_by=("vas-service", "payment-service"),
    )
    group = await make_group(
        f"test-loyalty-{unique}", (answers,), (TopupRecorded, BillPaid, RedemptionGranted, RedemptionRefused)
    )
    await programme.enroll(A, "t")
    refused = await redemptions.redeem(A, "DATA-2GB-7D", "redeem-key-1", "t")
    granted = await redemptions.redeem(A, "VAS-MCA-30D", "redeem-key-2", "t")
    assert (refused["status"], granted["status"]) == ("pending", "pending")
    assert await balance(store, A) == 1000 - 150 - 60
    published = [orjson.loads(r.value) for r in await read_all(topic.name, expect=3)]
    redeemed = {e["data"]["redemption_id"]: e for e in published if e["event_type"] == "PointsRedeemed"}
    assert redeemed[refused["redemption_id"]]["data"]["reward"]["data_kb"] == 2_097_152
    assert (
        PointsRedeemed.model_validate(redeemed[granted["redemption_id"]]).data.reward.granter == "vas-service"
    )

    async with consuming(group, loyalty_handler(programme, redemptions, ends), redis, publisher):
        no = refusal(refused["redemption_id"], redeemed[refused["redemption_id"]]["event_id"])
        yes = grant(granted["redemption_id"], redeemed[granted["redemption_id"]]["event_id"])
        # The refusal twice: a duplicate publish (same event) and a second answer (new event id).
        await publisher.publish(answers.name, [no, no, yes, refusal(refused["redemption_id"], "again")])

        async def answered() -> bool:
            docs = await store[REDEMPTIONS].find({"member": A}).to_list()
            return sorted(d["status"] for d in docs) == ["granted", "refused"]

        await eventually(answered)
    assert await balance(store, A) == 1000 - 60
    assert await store[LEDGER].count_documents({"member": A, "kind": "reverse"}) == 1
    back = [orjson.loads(r.value) for r in await read_all(topic.name, expect=4)]
    # Published again on the replay (at least once), always as the same event.
    reversals = {e["event_id"]: e["data"]["points"] for e in back if e["event_type"] == "PointsReversed"}
    assert list(reversals.values()) == [150]


async def test_concurrent_redemptions_never_take_more_points_than_there_are(
    programme: Programme, redemptions: Redemptions, store: Store
) -> None:
    await programme.enroll(A, "t")

    async def redeem(i: int) -> int:
        try:
            return int((await redemptions.redeem(A, "DATA-2GB-7D", f"burst-key-{i:03d}", "t"))["points"])
        except (Refused, Contended):
            return 0

    taken = await asyncio.gather(*(redeem(i) for i in range(50)))
    assert sum(taken) == 150 * 6
    assert await balance(store, A) == 1000 - 900


async def test_unknown_catalogue_items_and_non_members_are_refused(
    programme: Programme, redemptions: Redemptions
) -> None:
    with pytest.raises(ApiError, match="not a member"):
        await redemptions.redeem(B, "DATA-2GB-7D", "redeem-key-x", "t")
    await programme.enroll(A, "t")
    with pytest.raises(ApiError, match="no redemption"):
        await redemptions.redeem(A, "NOPE", "redeem-key-y", "t")


@pytest.fixture
async def offers(store: Store, ledger: PointsLedger, publisher: EventPublisher, topic: Topic) -> Offers:
    now = datetime.now(UTC)
    service = make_offers(store, ledger, publisher, topic)
    offer = {
        "_id": "CAFE",
        "partner": "Cà phê",
        "category": "restaurant",
        "title": "-20%",
        "min_tier": "member",
        "valid_from": now - timedelta(days=1),
        "valid_to": now + timedelta(days=30),
    }
    await service.add_offer(offer, [f"CODE{i:04d}" for i in range(20)])
    return service


async def test_an_ecode_pool_hammered_by_concurrent_claims_hands_each_code_out_once(
    offers: Offers, programme: Programme, store: Store
) -> None:
    members = [f"8477100{i:04d}" for i in range(40)]
    for m in members:
        await store[WALLETS].insert_one({"_id": m, "seq": 0, "points": 0, "tier": "member"})

    async def claim(m: str) -> str:
        try:
            code, _ = await offers.claim_code(m, "CAFE", "t")
            return str(code["code"])
        except ApiError as exc:
            return f"refused:{exc.code}"

    # Every member presses twice at once.
    got = await asyncio.gather(*(claim(m) for m in members for _ in range(2)))
    handed = [c for c in got if not c.startswith("refused:")]
    assert {c for c in got if c.startswith("refused:")} <= {"refused:sold_out", "refused:request_in_progress"}
    assert len(set(handed)) == 20  # the whole pool, each code once
    owners = await store[ECODE_OWNERS].find({"offer": "CAFE"}).to_list()
    assert len(owners) == 20
    assert len({o["member"] for o in owners}) == 20  # one code per member
    assert await store[ECODES].count_documents({"offer": "CAFE", "member": None}) == 0
    for o in owners:
        assert [c["code"] for c in await offers.my_codes(o["member"])] == [o["_id"]]


async def test_a_member_card_request_is_idempotent_and_one_at_a_time(offers: Offers, store: Store) -> None:
    await store[WALLETS].insert_one({"_id": A, "seq": 0, "points": 0, "tier": "gold"})
    address = {
        "recipient_name": "Nguyễn Văn A",
        "phone": A,
        "street": "1 Lê Lợi",
        "ward": "Bến Nghé",
        "district": "Quận 1",
        "province": "TP Hồ Chí Minh",
    }
    first, created = await offers.request_card(A, address, "card-key-1", "t")
    again, created_again = await offers.request_card(A, address, "card-key-1", "t")
    assert (created, created_again) == (True, False)
    assert again == first
    assert first["status"] == "received"
    with pytest.raises(ApiError, match="already in progress"):
        await offers.request_card(A, address, "card-key-2", "t")
    await offers.set_card_status(first["request_id"], "delivered")
    second, _ = await offers.request_card(A, address, f"card-key-{uuid.uuid4().hex[:6]}", "t")
    assert [c["status"] for c in await offers.my_cards(A)] == ["received", "delivered"]
    assert second["request_id"] != first["request_id"]


async def test_an_ecode_goes_out_on_the_bus_by_reference_never_as_the_code(
    offers: Offers, store: Store, topic: Topic
) -> None:
    await store[WALLETS].insert_one({"_id": A, "seq": 0, "points": 0, "tier": "member"})
    code, created = await offers.claim_code(A, "CAFE", "t")
    assert created and code["code"].startswith("CODE")
    [record] = await read_all(topic.name, expect=1)
    event = orjson.loads(record.value)
    assert (event["event_type"], event["event_version"]) == ("ECodeIssued", 2)
    assert event["data"]["ecode_id"] == f"CAFE:{A}" and "code" not in event["data"]
    assert code["code"].encode() not in record.value, "a redeemable code never travels on the bus"
    assert [c["code"] for c in await offers.my_codes(A)] == [code["code"]]  # read in the app
