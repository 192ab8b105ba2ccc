"""The HTTP API: health, listing and filtering messages, clearing, Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from smsc_sandbox import MessageRecord, SmscSandbox


def add(sandbox: SmscSandbox, destination: str, text: str, minutes: int = 0) -> None:
    sandbox.store.add(
        MessageRecord(
            id=f"id-{text}",
            message_ids=[f"id-{text}"],
            source="MobiFone",
            destination=destination,
            text=text,
            data_coding=0,
            parts=1,
            received_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
            system_id="mymobifone",
        )
    )


async def test_health_reports_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_messages_are_listed_newest_first(sandbox: SmscSandbox, http: httpx.AsyncClient) -> None:
    for n in range(3):
        add(sandbox, "84901234567", f"m{n}", minutes=n)
    response = await http.get("/messages")
    assert [m["text"] for m in response.json()] == ["m2", "m1", "m0"]
    assert response.json()[0]["received_at"] == "2025-01-01T00:02:00Z"


async def test_messages_filter_by_destination_in_any_written_form(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    add(sandbox, "84901234567", "for A")
    add(sandbox, "84931111111", "for B")
    for written in ("84901234567", "0901234567", "+84 90 123 4567"):
        response = await http.get("/messages", params={"to": written})
        assert [m["text"] for m in response.json()] == ["for A"], written


async def test_limit_caps_the_list(sandbox: SmscSandbox, http: httpx.AsyncClient) -> None:
    for n in range(30):
        add(sandbox, "84901234567", f"m{n}")
    assert len((await http.get("/messages")).json()) == 20
    assert [m["text"] for m in (await http.get("/messages", params={"limit": 2})).json()] == ["m29", "m28"]
    assert (await http.get("/messages", params={"limit": 0})).status_code == 422


async def test_latest_returns_the_newest_message_or_404(
    sandbox: SmscSandbox, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/messages/latest", params={"to": "84901234567"})).status_code == 404
    add(sandbox, "84901234567", "old")
    add(sandbox, "84901234567", "new")
    latest = await http.get("/messages/latest", params={"to": "0901234567"})
    assert latest.json()["text"] == "new"


async def test_delete_clears_every_message(sandbox: SmscSandbox, http: httpx.AsyncClient) -> None:
    add(sandbox, "84901234567", "a")
    add(sandbox, "84931111111", "b")
    assert (await http.delete("/messages")).json() == {"deleted": 2}
    assert (await http.get("/messages")).json() == []


async def test_metrics_are_prometheus_text(sandbox: SmscSandbox, http: httpx.AsyncClient) -> None:
    sandbox.metrics.binds.labels("transmitter", "ok").inc()
    sandbox.metrics.rejects.labels("submit_sm", "ESME_RTHROTTLED").inc()
    response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert 'smsc_binds_total{bind_type="transmitter",result="ok"} 1.0' in response.text
    assert 'smsc_rejects_total{command="submit_sm",status="ESME_RTHROTTLED"} 1.0' in response.text
    assert "# TYPE smsc_messages_received_total counter" in response.text
