"""The top-up SLI (`topup_credit_seconds`) on the real store and Kafka: one observation per
top-up credited, measured from the payment's record, none for a replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from account_service.announcements import PRODUCER
from account_service.ledger import LedgerService
from account_service.store import INDEXES, SUBSCRIBERS
from mobi_contracts import Topic
from mobi_contracts.events.account import BalanceChanged, BalanceChangeRejected
from mobi_contracts.events.payment import TopupRecorded, TopupRecordedData
from servicekit.kafka.publisher import EventPublisher
from servicekit.metrics import REGISTRY
from servicekit.mongo import Store
from servicekit.testing import make_topic

pytestmark = pytest.mark.integration
A = "84901110031"


def card_topup(topup_id: str, recorded_ago: timedelta) -> TopupRecorded:
    return TopupRecorded.new(
        subject=A,
        data=TopupRecordedData(
            topup_id=topup_id,
            amount_vnd=20_000,
            method="card_international",
            payer_msisdn=A,
            recorded_at=datetime.now(UTC) - recorded_ago,
        ),
        producer="tests",
        correlation_id=f"c-{topup_id}",
    )


def observed(le: str | None = None) -> float:
    labels = {"service": PRODUCER, "method": "card_international"}
    if le is None:
        return REGISTRY.get_sample_value("topup_credit_seconds_count", labels) or 0.0
    return REGISTRY.get_sample_value("topup_credit_seconds_bucket", labels | {"le": le}) or 0.0


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, unique: str) -> LedgerService:
    topic: Topic = await make_topic(f"test.account-events.{unique}", (BalanceChanged, BalanceChangeRejected))
    await store.ensure_indexes(INDEXES)
    await store[SUBSCRIBERS].insert_one({"_id": A, "plan": "prepaid", "status": "active"})
    return LedgerService(store, publisher, topic)


async def test_each_credited_top_up_is_timed_once_from_its_record_and_replays_are_not(
    ledger: LedgerService,
) -> None:
    count, within_5s, within_10s = observed(), observed("5.0"), observed("10.0")
    fresh = card_topup("T-fast", recorded_ago=timedelta(0))
    await ledger.apply([fresh])
    assert observed() == count + 1
    assert observed("5.0") == within_5s + 1, "credited at once: within the SLO's 5 s"

    await ledger.apply([fresh])  # redelivered: already credited, not a credit
    await ledger.apply([card_topup("T-fast", timedelta(0))])  # recorded again under a new event id
    assert observed() == count + 1

    await ledger.apply([card_topup("T-late", recorded_ago=timedelta(seconds=7))])
    assert observed() == count + 2
    assert observed("5.0") == within_5s + 1, "credited 7 s after its record: outside the 5 s"
    assert observed("10.0") == within_10s + 2
