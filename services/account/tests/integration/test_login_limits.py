"""Login limits, the OTP queue and session lifetimes on the real Redis and store."""

from __future__ import annotations

import asyncio
import contextlib
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
from servicekit.http import address_block
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


async def deliver_all(auth: AuthService, sender: OtpSender) -> list[str]:
    """What the sender does with every code queued so far (the queue is emptied)."""
    results = []
    while raw := await auth.redis.lpop(auth.queue.key):
        results.append(await sender.deliver(auth.queue.open(raw)))
    return results


def sender_of(auth: AuthService, sms: RecordingSms | None = None) -> OtpSender:
    return OtpSender(
        auth.queue,
        sms or RecordingSms(),
        auth.is_active_subscriber,
        "tests",
        charge=auth.limits.charge_delivery,
    )


async def fresh_block(redis: Redis) -> str:
    block = f"8479{uuid.uuid4().int % 100:02d}"
    await redis.delete(f"otp:sends:prefix:{block}")  # a block this test may have used before
    return block


async def test_a_prefix_budget_stops_sends_into_one_number_block_but_not_elsewhere(
    auth: AuthService, store: Store, redis: Redis
) -> None:
    auth.policy = replace(auth.policy, sends_per_prefix=3)
    block = await fresh_block(redis)
    for i in range(3):
        msisdn = f"{block}{i:05d}"
        await store["subscribers"].insert_one({"_id": msisdn, "status": "active", "plan": "prepaid"})
        await auth.request_otp(msisdn, client())
    assert await deliver_all(auth, sender_of(auth)) == ["sent"] * 3
    with pytest.raises(ApiError) as refused:
        await auth.request_otp(f"{block}00009", client())
    assert refused.value.status == 503
    await auth.request_otp(number(), client())  # another block still gets codes


async def test_requests_for_unassigned_numbers_do_not_spend_their_blocks_budget(
    auth: AuthService, store: Store, redis: Redis
) -> None:
    auth.policy = replace(auth.policy, sends_per_prefix=3)
    block = await fresh_block(redis)
    for i in range(10):  # nobody's numbers: SMS pumping into the block
        await auth.request_otp(f"{block}{i:05d}", client())
    assert await deliver_all(auth, sender_of(auth)) == ["not_subscriber"] * 10
    owner = f"{block}99999"
    await store["subscribers"].insert_one({"_id": owner, "status": "active", "plan": "prepaid"})
    await auth.request_otp(owner, client())
    sms = RecordingSms()
    assert await deliver_all(auth, sender_of(auth, sms)) == ["sent"] and sms.sent[0][0] == owner


def strangers(count_v4: int, count_v6: int) -> list[str]:
    """Client keys of strangers: IPv4 addresses, and /64s of one IPv6 /48 (servicekit.http)."""
    site = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}"
    v4 = [f"ip:198.51.{uuid.uuid4().int % 250}.{n + 1}" for n in range(count_v4)]
    v6 = [f"ip:{address_block(f'{site}:{n:x}::1')}" for n in range(count_v6)]
    return v4 + v6


async def code_for(auth: AuthService, msisdn: str) -> str:
    """The newest code queued for the number (the SMS the owner receives)."""
    queued = [auth.queue.open(raw) for raw in await auth.redis.lrange(auth.queue.key, 0, -1)]
    return str([m for m in queued if m["to"] == msisdn][-1]["code"])


async def hammer_wrong_codes(auth: AuthService, msisdn: str, crowd: list[str], each: int) -> list[int]:
    statuses = []
    for who in crowd:
        for _ in range(each):
            with pytest.raises(ApiError) as refused:
                await auth.verify_otp(msisdn, "000000", who)
            statuses.append(refused.value.status)
    return statuses


async def test_the_owner_gets_in_with_his_code_after_strangers_hammered_wrong_codes_from_twenty_places(
    auth: AuthService, store: Store
) -> None:
    msisdn = await subscriber(store)
    crowd = strangers(12, 8)  # eight of them /64s of one /48
    statuses = await hammer_wrong_codes(auth, msisdn, crowd, each=4)
    assert len(statuses) == 80 and set(statuses) <= {401, 429}
    owner = client()
    await auth.request_otp(msisdn, owner)
    tokens = await auth.verify_otp(msisdn, await code_for(auth, msisdn), owner)
    assert tokens.msisdn == msisdn


async def test_a_stranger_cannot_burn_the_code_the_owner_asked_for(auth: AuthService, store: Store) -> None:
    msisdn, owner = await subscriber(store), client()
    await auth.request_otp(msisdn, owner)
    statuses = await hammer_wrong_codes(auth, msisdn, strangers(3, 2), each=3)
    assert set(statuses) <= {401, 429}
    tokens = await auth.verify_otp(msisdn, await code_for(auth, msisdn), owner)
    assert tokens.msisdn == msisdn


async def test_a_known_device_gets_a_code_and_logs_in_while_strangers_spend_the_numbers_budgets(
    auth: AuthService, store: Store
) -> None:
    msisdn = await subscriber(store)
    device = (await auth.header_login(msisdn)).device_token  # the phone logged in once, on mobile data
    crowd = strangers(12, 8)
    for who in crowd:  # every code the number may be sent this hour, asked for by strangers
        with contextlib.suppress(ApiError):
            await auth.request_otp(msisdn, who)
    await hammer_wrong_codes(auth, msisdn, crowd, each=4)
    with pytest.raises(ApiError) as refused:
        await auth.request_otp(msisdn, client())
    assert (refused.value.status, refused.value.code) == (429, "too_many_codes"), "strangers spent it"
    home_wifi = client()
    await auth.request_otp(msisdn, home_wifi, device)
    tokens = await auth.verify_otp(msisdn, await code_for(auth, msisdn), home_wifi, device)
    assert tokens.msisdn == msisdn


async def test_a_device_proof_is_void_for_another_number_and_after_the_number_changes_hands(
    auth: AuthService, store: Store
) -> None:
    msisdn, other = await subscriber(store), await subscriber(store)
    device = (await auth.header_login(msisdn)).device_token
    assert (await auth.requester(msisdn, "ip:x", device)).startswith("device:")
    assert await auth.requester(other, "ip:x", device) == "ip:x"
    await auth.forget_owner(msisdn)  # a new owner
    assert await auth.requester(msisdn, "ip:x", device) == "ip:x"


async def test_a_crowd_of_ipv6_64s_in_one_48_shares_one_send_budget(auth: AuthService) -> None:
    auth.policy = replace(auth.policy, sends_per_site=6, sends_per_prefix=10**6, sends_overall=10**7)
    crowd = strangers(0, 9)
    results = []
    for who in crowd:
        try:
            await auth.request_otp(number(), who)
            results.append(202)
        except ApiError as exc:
            results.append(exc.status)
    assert results == [202] * 6 + [429] * 3


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
