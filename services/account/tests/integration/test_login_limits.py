"""Login limits, the OTP queue and session lifetimes on the real Redis and store."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from account_service.auth_flow import AuthService, _Session
from account_service.domain.otp import GuessPolicy, OtpPolicy
from account_service.otp_queue import OtpQueue, OtpSender
from servicekit.auth import SESSION_MAX_AGE, TokenSigner, TokenVerifier, generate_keypair
from servicekit.errors import ApiError
from servicekit.mongo import Store

pytestmark = pytest.mark.integration


class RecordingSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, destination: str, text: str) -> None:
        self.sent.append((destination, text))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[bytes, bytes]:
    private, public = generate_keypair(tmp_path)
    return private.read_bytes(), public.read_bytes()


@pytest.fixture
async def auth(store: Store, redis: Redis, keys: tuple[bytes, bytes]) -> AsyncIterator[AuthService]:
    # A queue of its own, so the running account service's sender does not take our codes.
    queue = OtpQueue(redis, b"pepper", 300)
    queue.key = f"otp:queue:test:{uuid.uuid4().hex}"
    yield AuthService(
        store=store,
        redis=redis,
        signer=TokenSigner(keys[0], "iss", "aud"),
        queue=queue,
        pepper=b"pepper",
        service="tests",
        refresh_ttl=3600,
        gateway_key="k",
        policy=OtpPolicy(resend_after_seconds=1),
        guesses=GuessPolicy(per_number_client=3, per_client=5, lock_base_seconds=2),
    )
    await redis.delete(queue.key)


def number() -> str:
    return f"8478{uuid.uuid4().int % 10**7:07d}"


def client() -> str:
    return f"ip:test-{uuid.uuid4().hex}"


async def subscriber(store: Store, status: str = "active") -> str:
    msisdn = number()
    await store["subscribers"].insert_one({"_id": msisdn, "status": status, "plan": "prepaid"})
    return msisdn


async def test_a_code_request_is_answered_before_any_sms_and_the_queue_never_holds_the_code_in_clear(
    auth: AuthService, store: Store, redis: Redis
) -> None:
    msisdn = await subscriber(store)
    await auth.request_otp(msisdn, client())
    (sealed,) = await redis.lrange(auth.queue.key, 0, -1)
    message = auth.queue.open(sealed)
    assert message["to"] == msisdn and str(message["code"]).encode() not in sealed
    sms = RecordingSms()
    sender = OtpSender(auth.queue, sms, auth.is_active_subscriber, "tests")
    assert await sender.deliver(message) == "sent"
    assert sms.sent and str(message["code"]) in sms.sent[0][1]


async def test_the_sender_sends_nothing_to_a_number_that_is_not_an_active_subscriber(
    auth: AuthService, store: Store, redis: Redis
) -> None:
    stranger, suspended = number(), await subscriber(store, status="suspended")
    for msisdn in (stranger, suspended):
        await auth.request_otp(msisdn, client())
    sms = RecordingSms()
    sender = OtpSender(auth.queue, sms, auth.is_active_subscriber, "tests")
    results = [
        await sender.deliver(auth.queue.open(raw)) for raw in await redis.lrange(auth.queue.key, 0, -1)
    ]
    assert results == ["not_subscriber", "not_subscriber"] and sms.sent == []


async def test_a_prefix_budget_stops_sends_into_one_number_block_but_not_elsewhere(
    auth: AuthService, redis: Redis
) -> None:
    auth.policy = replace(auth.policy, sends_per_prefix=3)
    block = f"8479{uuid.uuid4().int % 100:02d}"
    await redis.delete(f"otp:sends:prefix:{block}")  # a block this test may have used before
    for i in range(3):
        await auth.request_otp(f"{block}{i:05d}", client())
    with pytest.raises(ApiError) as refused:
        await auth.request_otp(f"{block}00009", client())
    assert refused.value.status == 503
    await auth.request_otp(number(), client())  # another block still gets codes


async def test_parallel_wrong_passwords_get_only_the_allowed_tries(auth: AuthService, store: Store) -> None:
    msisdn, who = await subscriber(store), client()
    results = await asyncio.gather(
        *(auth.password_login(msisdn, "wrong", who) for _ in range(12)), return_exceptions=True
    )
    statuses = sorted(r.status for r in results if isinstance(r, ApiError))
    assert statuses == [401] * 3 + [429] * 9


async def test_one_client_guessing_across_numbers_is_stopped_by_its_own_limit(
    auth: AuthService, store: Store
) -> None:
    who = client()
    statuses = []
    for _ in range(7):
        with pytest.raises(ApiError) as refused:
            await auth.password_login(await subscriber(store), "wrong", who)
        statuses.append(refused.value.status)
    assert statuses == [401] * 5 + [429] * 2


async def test_each_lock_of_the_same_client_lasts_longer(
    auth: AuthService, store: Store, redis: Redis
) -> None:
    msisdn, who = await subscriber(store), client()
    number_client, client_scope, _ = auth.limits.scopes("pwd", msisdn, who)
    lock_key, client_failures = (
        auth.limits.tries.keys(number_client)[1],
        auth.limits.tries.keys(client_scope)[0],
    )
    lengths = []
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(ApiError):
                await auth.password_login(msisdn, "wrong", who)
        lengths.append(await redis.ttl(lock_key))
        await redis.delete(lock_key, client_failures)  # wait the lock out, keep the strikes
    assert lengths == [2, 4]


async def test_a_session_older_than_the_maximum_age_is_refused_by_tokens_and_by_refresh(
    auth: AuthService, redis: Redis, store: Store, keys: tuple[bytes, bytes]
) -> None:
    msisdn = await subscriber(store)
    started = int(time.time()) - SESSION_MAX_AGE - 60
    old = _Session(msisdn, uuid.uuid4().hex, "otp", 0, started)
    token = TokenSigner(keys[0], "iss", "aud").issue(msisdn, old.session_id, "otp", 0, started + 1)
    with pytest.raises(ApiError):
        await TokenVerifier(keys[1], "iss", "aud", redis).verify(token)
    await redis.set("refresh:" + hashlib.sha256(b"old-refresh-token").hexdigest(), old.encode())
    with pytest.raises(ApiError) as refused:
        await auth.refresh("old-refresh-token")
    assert refused.value.code == "session_ended"


async def test_refresh_is_refused_once_the_subscription_is_no_longer_active(
    auth: AuthService, store: Store
) -> None:
    msisdn = await subscriber(store)
    tokens = await auth.header_login(msisdn)
    await store["subscribers"].update_one({"_id": msisdn}, {"$set": {"status": "terminated"}})
    with pytest.raises(ApiError) as refused:
        await auth.refresh(tokens.refresh_token)
    assert refused.value.status == 401
