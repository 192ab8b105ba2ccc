"""What the VAS and loyalty services ask of the account service, played with a plain Kafka
producer and observed as the app sees it (GET /api/v1/me/balances through the gateway):
a data pack is paid once and its bucket appears; a loyalty reward is granted once; a plan
change shows in the profile and the balances."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mobi_contracts.events.loyalty import PointsRedeemed
from mobi_contracts.events.vas import PlanChanged, PlanChangedData, VasChargeRequested
from mobi_contracts.topics import LOYALTY_EVENTS, PAYMENT_EVENTS, VAS_EVENTS
from servicekit.kafka.publisher import EventPublisher
from servicekit.testing import eventually, points_redeemed, topup_recorded, vas_charge_requested

from .conftest import header_login

pytestmark = pytest.mark.e2e


def data_pack(msisdn: str, charge_id: str, amount: int, quota_kb: int) -> VasChargeRequested:
    return vas_charge_requested(
        msisdn, charge_id, amount, bucket_kb=quota_kb, code="D15", producer="e2e-tests"
    )


def redeemed(msisdn: str, redemption_id: str, **reward: Any) -> PointsRedeemed:
    return points_redeemed(
        msisdn, redemption_id, points=100, catalog_code="E2E", producer="e2e-tests", **reward
    )


async def balances(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/v1/me/balances", headers=auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def shows(client: httpx.AsyncClient, auth: dict[str, str], main: int, buckets: set[str]) -> bool:
    b = await balances(client, auth)
    return b["main"]["balance_vnd"] == main and {d["id"] for d in b["data"]} == buckets


async def test_a_data_pack_is_paid_once_and_its_bucket_shows_in_the_balances(
    carrier: httpx.AsyncClient, subscriber: str, publisher: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    await publisher.publish(PAYMENT_EVENTS.name, [topup_recorded(subscriber, 30_000, f"E2E-g-{subscriber}")])
    charge = data_pack(subscriber, f"{subscriber}:1", 10_000, 1_572_864)
    await publisher.publish(VAS_EVENTS.name, [charge, charge])  # delivered twice
    await eventually(lambda: shows(carrier, auth, 20_000, {f"D15-{subscriber}:1"}))
    too_dear = data_pack(subscriber, f"{subscriber}:2", 25_000, 1_024)  # refused: 20 000 left
    await publisher.publish(
        VAS_EVENTS.name, [data_pack(subscriber, f"{subscriber}:1", 10_000, 1_572_864), too_dear]
    )
    # Same topic and key as the charges, so applied after them: when it shows, they were seen.
    marker = data_pack(subscriber, f"{subscriber}:3", 1_000, 1_024)
    await publisher.publish(VAS_EVENTS.name, [marker])
    await eventually(lambda: shows(carrier, auth, 19_000, {f"D15-{subscriber}:1", f"D15-{subscriber}:3"}))
    first = next(b for b in (await balances(carrier, auth))["data"] if b["id"] == f"D15-{subscriber}:1")
    assert (first["remaining_mb"], first["total_mb"]) == (1536.0, 1536.0)
    charges = (await carrier.get("/api/v1/me/charges", headers=auth)).json()["items"]
    assert sorted(c["amount_vnd"] for c in charges if c["kind"] == "vas") == [1_000, 10_000]


async def test_loyalty_rewards_are_granted_once_and_a_plan_change_shows(
    carrier: httpx.AsyncClient, subscriber: str, publisher: EventPublisher
) -> None:
    auth = await header_login(carrier, subscriber)
    airtime = redeemed(subscriber, f"e2e-a-{subscriber}", kind="airtime", amount_vnd=15_000)
    data = redeemed(subscriber, f"e2e-d-{subscriber}", kind="data", data_kb=2_097_152, validity_days=7)
    vas = redeemed(subscriber, f"e2e-v-{subscriber}", kind="vas", vas_code="FUNRING")  # the VAS service's
    marker = redeemed(subscriber, f"e2e-m-{subscriber}", kind="airtime", amount_vnd=1_000)
    # One partition, in order: when the marker shows, the duplicates before it were seen.
    await publisher.publish(LOYALTY_EVENTS.name, [airtime, data, vas, airtime, data, marker])
    await eventually(lambda: shows(carrier, auth, 16_000, {f"loyalty:e2e-d-{subscriber}"}))
    change = PlanChanged.new(
        subject=subscriber,
        data=PlanChangedData(
            change_id=f"e2e-p-{subscriber}",
            new_plan_code="MOBIF",
            billing="postpaid",
            effective_at=datetime.now(UTC),
        ),
        producer="e2e-tests",
        correlation_id=f"e2e-p-{subscriber}",
    )
    await publisher.publish(VAS_EVENTS.name, [change])
    await eventually(lambda: plan_code_is(carrier, auth, "MOBIF"))
    after = await balances(carrier, auth)
    assert after["main"]["balance_vnd"] == 16_000 and after["plan"] == "postpaid"
    profile = (await carrier.get("/api/v1/me", headers=auth)).json()
    assert profile["plan"] == "postpaid"
    (bucket,) = after["data"]
    assert bucket["total_mb"] == 2048.0


async def plan_code_is(client: httpx.AsyncClient, auth: dict[str, str], code: str) -> bool:
    return (await balances(client, auth)).get("plan_code") == code
