"""Access tokens: a remembered token still expires and still dies with its session."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from redis.asyncio import Redis

from servicekit import auth
from servicekit.auth import (
    TokenSigner,
    TokenVerifier,
    generate_keypair,
    revoked_session_key,
    session_generation_key,
)
from servicekit.errors import ApiError

pytestmark = pytest.mark.integration
NUMBER = "84901230009"  # used by no other test: no session generation of its own


@pytest.fixture(autouse=True)
async def fresh_generation(redis: Redis) -> None:
    await redis.delete(session_generation_key(NUMBER))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[TokenSigner, bytes]:
    private, public = generate_keypair(tmp_path)
    return TokenSigner(private.read_bytes(), "iss", "aud", ttl_seconds=60), public.read_bytes()


async def test_a_remembered_token_is_refused_once_it_expires(
    keys: tuple[TokenSigner, bytes], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    token = signer.issue(NUMBER, "sid-expiry", "otp")
    assert (await verifier.verify(token)).msisdn == NUMBER
    assert (await verifier.verify(token)).msisdn == NUMBER  # from memory
    later = auth.time.time() + 60 + auth.LEEWAY + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(ApiError, match="expired"):
        await verifier.verify(token)


async def test_a_remembered_token_dies_with_its_session(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    token = signer.issue(NUMBER, "sid-revoked-1", "otp")
    await verifier.verify(token)
    await redis.set(revoked_session_key("sid-revoked-1"), b"1", ex=60)
    with pytest.raises(ApiError, match="session ended"):
        await verifier.verify(token)


async def test_a_forged_token_is_refused_and_not_remembered(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    header, payload, signature = signer.issue(NUMBER, "sid-forged", "otp").split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(ApiError, match="invalid access token"):
            await verifier.verify(forged)


async def test_raising_the_numbers_generation_ends_its_tokens_and_later_logins_work(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    number = "84901230001"
    await redis.delete(session_generation_key(number))
    before = signer.issue(number, "sid-gen-1", "otp", generation=0)
    await verifier.verify(before)
    await redis.incr(session_generation_key(number))
    with pytest.raises(ApiError, match="session ended"):
        await verifier.verify(before)
    after = signer.issue(number, "sid-gen-2", "otp", generation=1)
    assert (await verifier.verify(after)).session_id == "sid-gen-2"
    await redis.delete(session_generation_key(number))


async def test_no_token_lives_past_its_sessions_maximum_age(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    started = int(auth.time.time()) - auth.SESSION_MAX_AGE + 30  # 30 s of the session left
    token = signer.issue(NUMBER, "sid-old", "otp", started_at=started)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] == started + auth.SESSION_MAX_AGE, "capped by the session, not the 60 s ttl"
    older = signer.issue(NUMBER, "sid-older", "otp", started_at=started - 3600)
    with pytest.raises(ApiError):
        await TokenVerifier(public, "iss", "aud", redis).verify(older)
