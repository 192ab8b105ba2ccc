"""Each running service documents every channel it consumes and produces with the event's schema."""

from __future__ import annotations

import os

import httpx
import pytest

from mobi_contracts import CONSUMER_GROUPS, Topic
from mobi_contracts.topics import ACCOUNT_EVENTS, LOYALTY_EVENTS, PAYMENT_EVENTS, STORES_EVENTS, VAS_EVENTS

pytestmark = pytest.mark.e2e

SERVICES: dict[str, tuple[int, Topic | None]] = {
    "account-service": (int(os.environ.get("ACCOUNT_PORT", "8101")), ACCOUNT_EVENTS),
    "vas-service": (int(os.environ.get("VAS_PORT", "8102")), VAS_EVENTS),
    "payment-service": (int(os.environ.get("PAYMENT_PORT", "8103")), PAYMENT_EVENTS),
    "loyalty-service": (int(os.environ.get("LOYALTY_PORT", "8104")), LOYALTY_EVENTS),
    "notify-service": (int(os.environ.get("NOTIFY_PORT", "8105")), None),  # consumes only
    "stores-service": (int(os.environ.get("STORES_PORT", "8106")), STORES_EVENTS),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_consumed_and_produced_channel_shows_the_event_schema(service: str) -> None:
    port, produced = SERVICES[service]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        spec = (await client.get("/asyncapi.json")).json()
    schemas = spec["components"]["schemas"]
    messages = spec["components"]["messages"]
    expected = {f"{produced.name}:{e.EVENT_TYPE}" for e in produced.events} if produced else set()
    for group in (g for g in CONSUMER_GROUPS if g.owner == service):
        expected |= {
            f"{t.name}:{e.EVENT_TYPE}:consume" for t in group.topics for e in group.handles if e in t.events
        }
    assert expected <= set(spec["channels"])
    for name in expected:
        for ref in spec["channels"][name]["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            schema = schemas[message["payload"]["$ref"].rsplit("/", 1)[-1]]
            event_type = name.split(":")[1]
            assert schema["title"] == event_type, name
            assert {"event_id", "subject", "correlation_id", "data"} <= set(schema["properties"]), name
