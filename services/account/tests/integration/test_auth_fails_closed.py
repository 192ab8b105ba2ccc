"""When Redis (codes, limits, sessions) does not answer, logins are refused, not waved through."""

from __future__ import annotations

from pathlib import Path

import pytest

from account_service.auth_flow import AuthService
from account_service.otp_queue import OtpQueue
from servicekit.auth import TokenSigner, TokenVerifier, generate_keypair
from servicekit.errors import ApiError
from servicekit.mongo import Store
from servicekit.redis_client import create_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path: Path) -> tuple[bytes, bytes]:
    private, public = generate_keypair(tmp_path)
    return private.read_bytes(), public.read_bytes()


async def test_otp_requests_and_verifies_are_refused_with_503_when_redis_is_down(
    store: Store, keys: tuple[bytes, bytes]
) -> None:
    dead = create_redis("redis://127.0.0.1:1/0")
    await store["subscribers"].insert_one({"_id": "84901112233", "status": "active", "plan": "prepaid"})
    auth = AuthService(
        store=store,
        redis=dead,
        signer=TokenSigner(keys[0], "iss", "aud"),
        queue=OtpQueue(dead, b"p", 300),
        pepper=b"p",
        service="tests",
        refresh_ttl=60,
        gateway_key="k",
    )
    with pytest.raises(ApiError) as requested:
        await auth.request_otp("84901112233", "ip:127.0.0.9")
    with pytest.raises(ApiError) as verified:
        await auth.verify_otp("84901112233", "123456", "ip:127.0.0.9")
    with pytest.raises(ApiError) as password:
        await auth.password_login("84901112233", "anything", "ip:127.0.0.9")
    assert {requested.value.status, verified.value.status, password.value.status} == {503}
    await dead.aclose()


async def test_a_valid_token_is_refused_when_its_session_cannot_be_checked(keys: tuple[bytes, bytes]) -> None:
    dead = create_redis("redis://127.0.0.1:1/0")
    token = TokenSigner(keys[0], "iss", "aud").issue("84901112233", "sid-1", "otp")
    with pytest.raises(ApiError) as refused:
        await TokenVerifier(keys[1], "iss", "aud", dead).verify(token)
    assert refused.value.status == 503
    await dead.aclose()
