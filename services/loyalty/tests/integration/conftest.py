from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loyalty_service.domain.rules import EarningRules, Eligibility, TransferRules
from loyalty_service.ledger import PointsLedger
from loyalty_service.offers import Offers
from loyalty_service.programme import Programme
from loyalty_service.redemptions import Redemptions
from loyalty_service.store import CARD_REQUESTS, ECODE_CLAIMS, INDEXES
from loyalty_service.tenancy import MembershipEnds
from mobi_contracts import Topic
from mobi_contracts.topics import LOYALTY_EVENTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.testing import make_topic


class Directory:
    """The account service's subscriber directory, played: every number active for years."""

    def __init__(self) -> None:
        self.unknown: set[str] = set()

    async def subscriber(self, msisdn: str) -> dict[str, Any] | None:
        if msisdn in self.unknown:
            return None
        return {"msisdn": msisdn, "status": "active", "since": datetime(2015, 1, 1, tzinfo=UTC).isoformat()}

    async def close(self) -> None:
        return None


@pytest.fixture
async def topic(unique: str) -> Topic:
    return await make_topic(f"test.loyalty-events.{unique}", LOYALTY_EVENTS.events)


@pytest.fixture
async def ledger(store: Store, publisher: EventPublisher, topic: Topic) -> PointsLedger:
    await store.ensure_indexes(INDEXES)
    return PointsLedger(store, publisher, "tests", topic)


def make_programme(store: Store, ledger: PointsLedger, **rules: Any) -> Programme:
    return Programme(
        store,
        ledger,
        Directory(),  # type: ignore[arg-type]
        earning=EarningRules(**rules.get("earning", {})),
        transfers=TransferRules(**rules.get("transfers", {"daily_max": 10**9})),
        eligibility=Eligibility(min_tenure_days=30),
        welcome_points=rules.get("welcome_points", 0),
    )


@pytest.fixture
def programme(store: Store, ledger: PointsLedger) -> Programme:
    return make_programme(store, ledger, welcome_points=1000)


@pytest.fixture
def redemptions(store: Store, ledger: PointsLedger) -> Redemptions:
    return Redemptions(store, ledger)


def make_offers(store: Store, ledger: PointsLedger, publisher: EventPublisher, topic: Topic) -> Offers:
    return Offers(
        store,
        ledger,
        OutboxRelay(store, publisher, "tests", ECODE_CLAIMS),
        OutboxRelay(store, publisher, "tests", CARD_REQUESTS),
        topic=topic,
    )


@pytest.fixture
def ends(
    store: Store, ledger: PointsLedger, publisher: EventPublisher, topic: Topic, programme: Programme
) -> MembershipEnds:
    return MembershipEnds(programme, make_offers(store, ledger, publisher, topic))


def recently(minutes: int = 1) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
