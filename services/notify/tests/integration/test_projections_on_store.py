"""Audience attributes come from other services' events, projected into notify's store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import MemberEnrolled, TierChanged
from mobi_contracts.events.vas import (
    PlanChanged,
    VasCancelled,
    VasConfirmed,
)
from notify_service.directory import Directory
from notify_service.domain.audience import bucket_of
from notify_service.projections import project
from notify_service.store import INDEXES
from servicekit.mongo import Store

pytest_plugins = ["servicekit.testing"]
pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)
A, B = "84901110001", "84901110002"


def event(cls: type[AnyEvent], subject: str, **data: object) -> AnyEvent:
    data_cls = cls.model_fields["data"].annotation
    return cls.new(subject=subject, data=data_cls(**data), producer="tests", correlation_id="t")  # type: ignore[union-attr]


async def test_plans_tiers_and_active_vas_are_projected_in_event_order(store: Store) -> None:
    await store.ensure_indexes(INDEXES)
    directory = Directory(store)
    await project(
        store,
        [
            event(PlanChanged, A, change_id="c1", new_plan_code="MC90", billing="prepaid", effective_at=NOW),
            event(MemberEnrolled, A, tier="member", enrolled_at=NOW),
            event(TierChanged, A, from_tier="member", to_tier="gold", qualifying_points=9000, changed_at=NOW),
            event(VasConfirmed, A, subscription_id="s1", code="MAX90", how="in_app", confirmed_at=NOW),
            event(VasConfirmed, B, subscription_id="s2", code="FUN", how="in_app", confirmed_at=NOW),
            event(VasCancelled, B, subscription_id="s2", code="FUN", channel="app", cancelled_at=NOW),
        ],
    )
    a = await directory.attributes_of(A, {"billing", "tier", "vas"})
    assert (a.billing, a.tier, a.vas) == ("prepaid", "gold", frozenset({"MAX90"}))
    b = await directory.attributes_of(B, {"billing", "tier", "vas"})
    assert (b.billing, b.tier, b.vas) == (None, None, frozenset())

    in_bucket = await directory.attributes_in_bucket(bucket_of(A), {"billing", "tier", "vas"})
    assert in_bucket[A] == a
    await project(
        store, [event(VasCancelled, A, subscription_id="s1", code="MAX90", channel="sms", cancelled_at=NOW)]
    )
    assert (await directory.attributes_of(A, {"vas"})).vas == frozenset()
