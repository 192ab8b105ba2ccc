"""Content providers are told apart (issue 16, "Partners"): each has its own credential, is who
the credential says, may only ask for its own services, and is limited per provider and per
number, as are the "confirm this subscription?" pushes its requests cause."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import header_login
from .test_vas import VAS, external, provider_headers

pytestmark = pytest.mark.e2e


async def ask(msisdn: str, code: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=VAS, trust_env=False, timeout=15) as client:
        return await client.post(
            "/internal/v1/vas/subscriptions",
            json={
                "msisdn": msisdn,
                "code": code,
                "channel": "sms",
                "request_ref": f"ref-{uuid.uuid4().hex[:16]}",
                **body,
            },
            headers=headers,
        )


async def test_a_partner_cannot_act_as_another_nor_with_the_old_shared_key(subscriber: str) -> None:
    r = await ask(subscriber, "MCLIP", provider_headers("vmusic"), provider="mobitv")  # names someone else
    assert (r.status_code, r.json()["error"]) == (403, "not_this_provider"), r.text
    r = await external(subscriber, "MOBITV", "vmusic")  # a competitor's service
    assert (r.status_code, r.json()["error"]) == (422, "not_your_service"), r.text
    r = await ask(
        subscriber, "MCLIP", provider_headers("vmusic", key="local-provider-key-mobitv")
    )  # another's key
    assert r.status_code == 403, r.text
    shared = {
        "X-Internal-Caller": "content-provider",
        "X-Internal-Key": "local-internal-key-content-provider",
    }
    r = await ask(subscriber, "MCLIP", shared, provider="vmusic")
    assert r.status_code == 403, r.text
    r = await external(subscriber, "MCLIP", "vmusic")  # its own credential, its own service
    assert r.status_code == 201, r.text


async def test_a_partner_is_limited_per_number(subscriber: str) -> None:
    answers = [
        await external(subscriber, code, "vmusic") for code in ("MCLIP", "NHACCHO", "MCLIP", "NHACCHO")
    ]
    assert [a.status_code for a in answers[:3]] == [201, 201, 409]  # a third ask for MCLIP: running
    assert (answers[3].status_code, answers[3].json()["error"]) == (429, "too_many_requests")
    assert int(answers[3].headers["Retry-After"]) > 0


async def test_confirmation_prompts_to_one_number_are_limited_across_partners(
    carrier: httpx.AsyncClient, subscriber: str
) -> None:
    auth = await header_login(carrier, subscriber)
    r = await carrier.put("/api/v1/me/vas/guard", json={"block_external": True}, headers=auth)
    assert r.status_code == 200, r.text
    asks = [("MCLIP", "vmusic"), ("MOBITV", "mobitv"), ("TINNONG", "vnews"), ("TUVI", "tuvi-online")]
    answers = [await external(subscriber, code, provider) for code, provider in asks]
    assert [a.status_code for a in answers] == [201, 201, 201, 429], [a.text for a in answers]
    assert answers[3].json()["error"] == "too_many_confirmations"
    pending = (await carrier.get("/api/v1/me/vas", headers=auth)).json()["items"]
    assert sorted(s["code"] for s in pending) == ["MCLIP", "MOBITV", "TINNONG"]  # nothing of the refused one
