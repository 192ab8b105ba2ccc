"""The FCM and APNs adapters against the push sandbox's app (in process, no network)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from notify_service.push import Outcome, Push, Pusher
from notify_service.settings import NotifySettings
from push_sandbox.app import PushSandbox


@pytest.fixture
async def sandbox_and_pusher() -> AsyncIterator[tuple[PushSandbox, Pusher]]:
    sandbox = PushSandbox()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox))
    settings = NotifySettings(push_base_url="http://sandbox", push_max_attempts=4)
    pusher = Pusher(settings, http=http)
    yield sandbox, pusher
    await pusher.close()


def apns(collapse: str = "promo-1") -> Push:
    return Push(
        device_id="d-" + collapse,
        platform="apns",
        token=secrets.token_hex(32),
        title="Hello",
        body="World",
        collapse_id=collapse,
    )


def fcm(collapse: str = "promo-1") -> Push:
    return Push(
        device_id="d-" + collapse,
        platform="fcm",
        token="fcm-" + secrets.token_urlsafe(40),
        title="Xin chào",
        body="Khuyến mãi",
        collapse_id=collapse,
        deep_link="mymobifone://x",
    )


async def test_both_providers_deliver_and_the_phone_shows_one_per_collapse_id(
    sandbox_and_pusher: tuple[PushSandbox, Pusher],
) -> None:
    sandbox, pusher = sandbox_and_pusher
    a, f = apns(), fcm()
    assert await pusher.send_all([a, f, a]) == [Outcome.SENT] * 3
    assert sandbox.state.deliveries[a.token] == 2
    assert sandbox.state.shown[(a.token, "promo-1")] == 2  # counted per send; the device collapses
    assert sandbox.state.deliveries[f.token] == 1
    assert sandbox.state.shown[(f.token, "promo-1")] == 1
    assert len(sandbox.state.issued_tokens) == 1  # one OAuth2 access token, reused


async def test_unregistered_tokens_are_reported_for_pruning(
    sandbox_and_pusher: tuple[PushSandbox, Pusher],
) -> None:
    sandbox, pusher = sandbox_and_pusher
    a, f = apns(), fcm()
    sandbox.state.unregistered.update({a.token, f.token})
    assert await pusher.send_all([a, f]) == [Outcome.UNREGISTERED, Outcome.UNREGISTERED]
    assert sandbox.state.responses[("apns", 410)] == 1
    assert sandbox.state.responses[("fcm", 404)] == 1


async def test_rate_limits_and_server_errors_are_retried_until_sent(
    sandbox_and_pusher: tuple[PushSandbox, Pusher],
) -> None:
    sandbox, pusher = sandbox_and_pusher
    sandbox.state.faults.retry_after_s = 0
    sandbox.state.faults.rate_limited = 2
    sandbox.state.faults.server_errors = 1
    a = apns()
    assert await pusher.send(a) is Outcome.SENT
    assert sandbox.state.responses[("apns", 429)] == 2
    assert sandbox.state.responses[("apns", 503)] == 1
    assert sandbox.state.deliveries[a.token] == 1


async def test_a_push_still_refused_after_every_try_fails(
    sandbox_and_pusher: tuple[PushSandbox, Pusher],
) -> None:
    sandbox, pusher = sandbox_and_pusher
    sandbox.state.faults.retry_after_s = 0
    sandbox.state.faults.rate_limited = 10
    a = apns()
    assert await pusher.send(a) is Outcome.FAILED
    assert sandbox.state.responses[("apns", 429)] == 4  # push_max_attempts
    assert sandbox.state.deliveries[a.token] == 0


async def test_an_expired_access_token_is_renewed(sandbox_and_pusher: tuple[PushSandbox, Pusher]) -> None:
    sandbox, pusher = sandbox_and_pusher
    assert await pusher.send(fcm("one")) is Outcome.SENT
    sandbox.state.issued_tokens.clear()  # the provider no longer accepts the token we hold
    assert await pusher.send(fcm("two")) is Outcome.SENT
    assert sandbox.state.responses[("fcm", 401)] == 1


def test_real_provider_keys_are_required_outside_local(tmp_path: Path) -> None:
    kit_secrets = {"gateway_key": secrets.token_hex(32), "kafka_password": secrets.token_hex(32)}
    with pytest.raises(ValueError, match=r"FCM_CREDENTIALS\(_FILE\), APNS_KEY\(_FILE\)"):
        NotifySettings(environment="production", **kit_secrets)
    (tmp_path / "fcm.json").write_text("{}")
    (tmp_path / "apns.p8").write_text("key")
    files = {"fcm_credentials_file": tmp_path / "fcm.json", "apns_key_file": tmp_path / "apns.p8"}
    with pytest.raises(ValueError, match="real providers"):
        NotifySettings(environment="production", **kit_secrets, **files)
    real = {"fcm_base_url": "https://fcm.googleapis.com", "apns_base_url": "https://api.push.apple.com"}
    assert (
        NotifySettings(environment="production", **kit_secrets, **files, **real).apns_url
        == real["apns_base_url"]
    )
