"""Access tokens: a remembered token still expires and still dies with its session."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from servicekit import auth
from servicekit.auth import TokenSigner, TokenVerifier, generate_keypair, revoked_session_key
from servicekit.errors import ApiError

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path: Path) -> tuple[TokenSigner, bytes]:
    private, public = generate_keypair(tmp_path)
    return TokenSigner(private.read_bytes(), "iss", "aud", ttl_seconds=60), public.read_bytes()


async def test_a_remembered_token_is_refused_once_it_expires(
    keys: tuple[TokenSigner, bytes], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    token = signer.issue("84901234567", "sid-expiry", "otp")
    assert (await verifier.verify(token)).msisdn == "84901234567"
    assert (await verifier.verify(token)).msisdn == "84901234567"  # from memory
    later = auth.time.time() + 60 + auth.LEEWAY + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(ApiError, match="expired"):
        await verifier.verify(token)


async def test_a_remembered_token_dies_with_its_session(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    token = signer.issue("84901234567", "sid-revoked-1", "otp")
    await verifier.verify(token)
    await redis.set(revoked_session_key("sid-revoked-1"), b"1", ex=60)
    with pytest.raises(ApiError, match="session ended"):
        await verifier.verify(token)


async def test_a_forged_token_is_refused_and_not_remembered(
    keys: tuple[TokenSigner, bytes], redis: Redis
) -> None:
    signer, public = keys
    verifier = TokenVerifier(public, "iss", "aud", redis)
    header, payload, signature = signer.issue("84901234567", "sid-forged", "otp").split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(ApiError, match="invalid access token"):
            await verifier.verify(forged)
