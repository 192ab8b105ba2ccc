"""Stores and support through the gateway, as the app uses them; the catalogue import and
ticket answers on the service's internal API, as the operators' tools call it."""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from mobi_contracts import parse_event
from mobi_contracts.events.stores import FeedbackAnsweredV2, FeedbackReceivedV2
from servicekit.internal_keys import caller_headers
from servicekit.testing import kafka_client_options
from stores_service import importer
from stores_service.domain.catalogue import StoreRow, to_csv
from stores_service.domain.geo import brute_force
from stores_service.seed import demo_catalogue

from .conftest import GATEWAY, OPS_HEADERS, header_login, provision

pytestmark = pytest.mark.e2e
STORES = os.environ.get("STORES_URL", "http://127.0.0.1:8106")
DEMO = demo_catalogue()
POINTS = [(r.lat, r.lon) for r in DEMO]


async def import_catalogue(content: bytes, content_type: str = "text/csv") -> httpx.Response:
    async with httpx.AsyncClient(base_url=STORES, trust_env=False, timeout=120) as client:
        return await client.post(
            "/internal/v1/stores/catalogue",
            content=content,
            headers={**OPS_HEADERS, "Content-Type": content_type},
            params={"source": "e2e"},
        )


@pytest.fixture(scope="module")
async def demo_active() -> str:
    """The demo catalogue is the active one for these tests (and stays so afterwards)."""
    r = await import_catalogue(to_csv(DEMO))
    assert r.status_code == 200, r.text
    return str(r.json()["version"])


@pytest.fixture
async def app() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=GATEWAY, trust_env=False, timeout=15) as client:
        yield client


async def test_nearest_stores_match_a_full_scan_of_the_catalogue(
    app: httpx.AsyncClient, demo_active: str
) -> None:
    rng = random.Random(5)
    centres = [(21.0285, 105.8542), (10.7769, 106.7009), (16.0544, 108.2022), (11.9404, 108.4583)]
    # Random points near cities, exactly on 0.1-degree cell edges, and in the countryside.
    queries = [(lat + rng.gauss(0, 0.05), lon + rng.gauss(0, 0.05)) for lat, lon in centres for _ in range(4)]
    queries += [(21.0, 105.8), (10.8, 106.7), (16.1, 108.2), (21.1, 105.9)]
    queries += [(rng.uniform(9, 22), rng.uniform(104, 108)) for _ in range(4)]
    for lat, lon in queries:
        r = await app.get(
            "/api/v1/stores/nearest", params={"lat": lat, "lon": lon, "limit": 7, "radius_km": 300}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["catalogue_version"] == demo_active
        want = brute_force(POINTS, lat, lon, 7, 300)
        assert [s["id"] for s in body["items"]] == [DEMO[h.index].id for h in want], (lat, lon)
        for item, hit in zip(body["items"], want, strict=True):
            assert math.isclose(item["distance_km"], hit.distance_km, abs_tol=0.001)
            assert isinstance(item["open_now"], bool)
            assert item["map_url"].startswith("https://www.google.com/maps/")


async def test_nearest_filters_by_service_and_radius(app: httpx.AsyncClient, demo_active: str) -> None:
    r = await app.get(
        "/api/v1/stores/nearest",
        params={"lat": 21.03, "lon": 105.85, "limit": 10, "service": "esim", "radius_km": 3},
    )
    assert r.status_code == 200
    items = r.json()["items"]
    assert items and all("esim" in s["services"] and s["distance_km"] <= 3 for s in items)
    open_now = await app.get(
        "/api/v1/stores/nearest", params={"lat": 10.78, "lon": 106.7, "open_now": "true"}
    )
    # Round-the-clock agents are open whenever this runs.
    assert open_now.json()["items"] and all(s["open_now"] for s in open_now.json()["items"])
    # Nothing within 1 km of the sea off Đà Nẵng.
    far = await app.get("/api/v1/stores/nearest", params={"lat": 16.3, "lon": 108.6, "radius_km": 1})
    assert far.status_code == 200 and far.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 95, "lon": 105.8}, "query.lat"),
        ({"lat": 21, "lon": -181}, "query.lon"),
        ({"lat": "abc", "lon": 105.8}, "query.lat"),
        ({"lat": 21}, "query.lon"),
        ({"lat": 21, "lon": 105.8, "limit": 0}, "query.limit"),
        ({"lat": 21, "lon": 105.8, "service": "free_beer"}, "query.service"),
    ],
)
async def test_bad_coordinates_and_parameters_get_a_422_naming_the_field(
    app: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    r = await app.get("/api/v1/stores/nearest", params=params)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request" and field in r.json()["message"]


@pytest.mark.parametrize(("lat", "lon"), [(13.7563, 100.5018), (48.85, 2.35), (0, 0), (-21.03, 105.85)])
async def test_coordinates_far_outside_vietnam_get_a_clear_422(
    app: httpx.AsyncClient, lat: float, lon: float
) -> None:
    r = await app.get("/api/v1/stores/nearest", params={"lat": lat, "lon": lon})
    assert r.status_code == 422
    assert r.json()["error"] == "outside_vietnam" and "Vietnam" in r.json()["message"]


async def test_a_radius_beyond_the_maximum_is_refused(app: httpx.AsyncClient) -> None:
    r = await app.get("/api/v1/stores/nearest", params={"lat": 21, "lon": 105.8, "radius_km": 5000})
    assert r.status_code == 422 and "radius_km" in r.json()["message"]


async def test_store_details_and_an_unknown_store(app: httpx.AsyncClient, demo_active: str) -> None:
    store = DEMO[0]
    r = await app.get(f"/api/v1/stores/{store.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == store.name and body["address"] == store.address
    assert set(body["hours"]) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    assert body["tel"].startswith("tel:0") and isinstance(body["open_now"], bool)
    missing = await app.get("/api/v1/stores/NOPE-0000")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    odd = await app.get("/api/v1/stores/%3Cscript%3E")
    assert odd.status_code == 422


async def test_search_ignores_diacritics_and_case(app: httpx.AsyncClient, demo_active: str) -> None:
    plain = await app.get("/api/v1/stores/search", params={"q": "ha noi", "limit": 50})
    accented = await app.get("/api/v1/stores/search", params={"q": "Hà Nội", "limit": 50})
    assert plain.status_code == accented.status_code == 200
    assert plain.json()["total"] == accented.json()["total"] > 100
    assert all("Hà Nội" in s["address"] for s in plain.json()["items"])
    district = await app.get("/api/v1/stores/search", params={"q": "CUA HANG hoan kiem"})
    names = [s["name"] for s in district.json()["items"]]
    assert names and all(n.startswith("Cửa hàng MobiFone Hoàn Kiếm") for n in names)
    none = await app.get("/api/v1/stores/search", params={"q": "zzzzqq"})
    assert none.json() == {"items": [], "total": 0, "catalogue_version": demo_active}


async def test_hotlines_have_tel_links_costs_and_hours(app: httpx.AsyncClient) -> None:
    r = await app.get("/api/v1/support/hotlines")
    assert r.status_code == 200
    lines = r.json()["items"]
    assert {"customer_care", "complaints", "loyalty", "roaming"} <= {h["purpose"] for h in lines}
    for line in lines:
        assert line["tel"] == f"tel:{line['number']}"
        assert isinstance(line["free"], bool) and isinstance(line["open_now"], bool)
    assert any(h["free"] for h in lines)


# -- feedback ----------------------------------------------------------------------------------


async def test_feedback_gets_a_ticket_only_its_author_sees_and_an_answer_reaches_them(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.post(
        "/api/v1/me/feedback",
        json={
            "category": "network",
            "text": "Sóng 4G\x00 yếu \u202eở Cầu Giấy\x1b",
            "rating": 2,
            "screen": "home",
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["ticket"].startswith("GY-") and ticket["status"] == "received"
    assert ticket["text"] == "Sóng 4G yếu ở Cầu Giấy"  # control and bidi characters removed
    mine = await carrier.get("/api/v1/me/feedback", headers=auth)
    assert [t["ticket"] for t in mine.json()["items"]] == [ticket["ticket"]]

    other = "8477" + f"{random.randrange(10**7):07d}"
    await provision(other)
    theirs = await carrier.get("/api/v1/me/feedback", headers=await header_login(carrier, other))
    assert theirs.status_code == 200 and theirs.json()["items"] == []

    async with httpx.AsyncClient(base_url=STORES, trust_env=False) as ops:
        path = f"/internal/v1/feedback/{ticket['ticket']}/answers"
        answer = {"status": "answered", "reply": "Đã tăng cường trạm phát", "agent": "cskh.an"}
        assert (await ops.post(path, json=answer)).status_code == 403
        as_payment = await ops.post(path, json=answer, headers=caller_headers("payment-service"))
        assert as_payment.status_code == 403
        answered = await ops.post(path, json=answer, headers=OPS_HEADERS)
        assert answered.status_code == 200, answered.text
    mine = (await carrier.get("/api/v1/me/feedback", headers=auth)).json()["items"][0]
    assert mine["status"] == "answered" and mine["replies"][0]["text"] == "Đã tăng cường trạm phát"
    events = await events_for(subscriber, expect=2)
    assert [type(e) for e in events] == [FeedbackReceivedV2, FeedbackAnsweredV2]
    assert events[1].data.ticket == ticket["ticket"] and events[1].data.has_reply
    on_the_bus = "".join(e.model_dump_json() for e in events)
    assert "Cầu Giấy" not in on_the_bus and "trạm phát" not in on_the_bus, "words stay in the store"


async def events_for(msisdn: str, expect: int, timeout: float = 15) -> list[object]:
    consumer = AIOKafkaConsumer(
        "stores.events.v1", auto_offset_reset="earliest", enable_auto_commit=False, **kafka_client_options()
    )
    await consumer.start()
    found: list[object] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < expect and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found += [parse_event(r.value) for r in records if r.key == msisdn.encode()]
        return found
    finally:
        await consumer.stop()


async def test_feedback_needs_a_login_and_valid_text(carrier: httpx.AsyncClient, subscriber: str) -> None:
    anonymous = await carrier.post("/api/v1/me/feedback", json={"category": "app", "text": "hello there"})
    assert anonymous.status_code == 401
    auth = await header_login(carrier, subscriber)
    for body, fragment in (
        ({"category": "app", "text": "x" * 2001}, "2000"),
        ({"category": "app", "text": " \x00\x01 "}, "text"),
        ({"category": "praise", "text": "hello there"}, "category"),
        ({"category": "app", "text": "hello there", "rating": 6}, "rating"),
        ({"category": "app", "text": "hello there", "html": "<b>"}, "html"),
    ):
        r = await carrier.post("/api/v1/me/feedback", json=body, headers=auth)
        assert r.status_code == 422, (body, r.text)
        assert fragment in r.json()["message"]


async def test_feedback_is_rate_limited_per_subscriber(carrier: httpx.AsyncClient, subscriber: str) -> None:
    auth = await header_login(carrier, subscriber)
    statuses = []
    for n in range(6):
        r = await carrier.post(
            "/api/v1/me/feedback", json={"category": "suggestion", "text": f"Góp ý số {n}"}, headers=auth
        )
        statuses.append(r.status_code)
    assert statuses == [201] * 5 + [429]
    assert int(r.headers["Retry-After"]) > 0 and r.json()["error"] == "feedback_rate_limited"
    assert len((await carrier.get("/api/v1/me/feedback", headers=auth)).json()["items"]) == 5


async def test_a_retried_feedback_with_the_same_key_files_one_ticket(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = {**await header_login(carrier, subscriber), "Idempotency-Key": f"fb-{random.randrange(10**9)}"}
    body = {"category": "billing", "text": "Cước tháng này cao bất thường"}
    first = await carrier.post("/api/v1/me/feedback", json=body, headers=auth)
    again = await carrier.post("/api/v1/me/feedback", json=body, headers=auth)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["ticket"] == again.json()["ticket"]


# -- catalogue import --------------------------------------------------------------------------


async def test_a_bad_import_names_the_row_and_the_old_catalogue_keeps_serving(
    app: httpx.AsyncClient, demo_active: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [r.model_dump(mode="json") for r in DEMO[:50]]
    rows[31]["lat"] = 91
    r = await import_catalogue(httpx.Request("POST", "/", json=rows).content, "application/json")
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_catalogue" and r.json()["message"].startswith("row 32: lat")
    bad_csv = to_csv(DEMO[:10]).decode().replace(DEMO[4].id, DEMO[2].id)
    r = await import_catalogue(bad_csv.encode())
    assert (
        r.status_code == 422
        and r.json()["message"] == f"row 5 (line 6): id {DEMO[2].id} repeats row 3 (line 4)"
    )
    # The operators' command line says the same and fails.
    bad_file = tmp_path / "stores.csv"
    bad_file.write_text(bad_csv)
    assert await asyncio.to_thread(importer.main, [str(bad_file), "--url", STORES]) == 1
    assert "row 5 (line 6)" in capsys.readouterr().err
    near = await app.get("/api/v1/stores/nearest", params={"lat": 21.03, "lon": 105.85})
    assert near.json()["catalogue_version"] == demo_active
    assert (await app.get(f"/api/v1/stores/{DEMO[-1].id}")).status_code == 200


async def test_an_import_replaces_the_catalogue_for_the_app_at_once(
    app: httpx.AsyncClient, demo_active: str
) -> None:
    changed: list[StoreRow] = [
        DEMO[0].model_copy(update={"name": "Cửa hàng MobiFone Tràng Tiền Plaza"}),
        *DEMO[1:100],
    ]
    try:
        r = await import_catalogue(to_csv(changed))
        assert r.status_code == 200, r.text
        assert r.json()["stores"] == 100 and r.json()["previous_version"] == demo_active
        found = await app.get("/api/v1/stores/search", params={"q": "trang tien plaza"})
        assert [s["id"] for s in found.json()["items"]] == [DEMO[0].id]
        assert (await app.get(f"/api/v1/stores/{DEMO[-1].id}")).status_code == 404
    finally:
        restored = await import_catalogue(to_csv(DEMO))
        assert restored.status_code == 200


async def test_the_import_endpoint_is_for_operators_only(demo_active: str) -> None:
    async with httpx.AsyncClient(base_url=STORES, trust_env=False) as client:
        for headers in ({}, caller_headers("notify-service"), caller_headers("ops", "wrong-key")):
            r = await client.post("/internal/v1/stores/catalogue", content=b"[]", headers=headers)
            assert r.status_code == 403
    async with httpx.AsyncClient(base_url=GATEWAY, trust_env=False) as app:
        r = await app.post("/internal/v1/stores/catalogue", content=b"[]", headers=OPS_HEADERS)
        assert r.status_code == 404
