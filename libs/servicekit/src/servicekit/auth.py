"""Access tokens: Ed25519-signed JWTs issued by the account service, verified everywhere.

Only the account service holds the private key; other services get the public key. A
token names its session (`sid`); logging out marks the session revoked in Redis, and
verification checks that mark, so a stolen access token dies with its session. A token also
carries the number's session generation (`gen`) at login and when the session began (`sat`):
a password change, or the number changing owner or status, raises the generation and so ends
every session of the number at once; and no session lives longer than SESSION_MAX_AGE, however
often it is refreshed. If Redis cannot answer, verification refuses (fails closed) rather than
trusting a token blindly. It carries the start of the number's current tenancy too
(`owner_since`, see servicekit.tenancy): views show the caller only records made since.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .api import declare_errors
from .errors import unauthorized, unavailable
from .tenancy import EPOCH, from_claim, to_claim

ALGORITHM = "EdDSA"
LEEWAY = 5  # seconds of clock skew allowed on exp
SESSION_MAX_AGE = 90 * 24 * 3600  # a session's whole life, refreshes included


def revoked_session_key(session_id: str) -> str:
    return f"session:revoked:{session_id}"


def session_generation_key(msisdn: str) -> str:
    """Raised (INCR) to end every session of a number; absent means generation 0."""
    return f"session:gen:{msisdn}"


@dataclass(frozen=True)
class Caller:
    """The authenticated subscriber making the request."""

    msisdn: str
    session_id: str
    method: str
    # Redis values a route asked for along with the session check (one round trip), by key.
    prefetched: Mapping[str, bytes | None] = field(default_factory=dict, compare=False)
    # When the number's current owner got it: records made before are a previous owner's.
    owner_since: datetime = EPOCH


class TokenSigner:
    def __init__(self, private_key_pem: bytes, issuer: str, audience: str, ttl_seconds: int = 600) -> None:
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds

    def issue(
        self,
        msisdn: str,
        session_id: str,
        method: str,
        generation: int = 0,
        started_at: int | None = None,
        owner_since: datetime = EPOCH,
    ) -> str:
        now = int(time.time())
        started = now if started_at is None else started_at
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": msisdn,
            "sid": session_id,
            "amr": [method],
            "gen": generation,
            "sat": started,
            "owner_since": to_claim(owner_since),
            "iat": now,
            # An access token never outlives its session's maximum age.
            "exp": min(now + self.ttl, started + SESSION_MAX_AGE),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    """Verifies access tokens. A token whose signature was checked is remembered (bounded, in
    process) until it expires: an app calls with the same token many times a minute, and the
    Ed25519 check was the largest cost of a cached read. Expiry and the session's revocation
    are checked on every call."""

    REMEMBERED = 20_000

    def __init__(self, public_key_pem: bytes, issuer: str, audience: str, redis: Redis) -> None:
        self._key = serialization.load_pem_public_key(public_key_pem)
        self.issuer = issuer
        self.audience = audience
        self.redis = redis
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _claims(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] + LEEWAY < time.time():
                del self._verified[token]
                raise unauthorized("access token expired")
            return claims
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "sid"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("access token expired") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized("invalid access token") from exc
        self._verified[token] = claims
        if len(self._verified) > self.REMEMBERED:
            self._verified.popitem(last=False)
        return claims

    async def verify(self, token: str, prefetch: KeysFor | None = None) -> Caller:
        """The caller of a valid token of a live session; with `prefetch`, the Redis values of
        the keys it names for the subscriber come in the same round trip as the session check."""
        claims = self._claims(token)
        if time.time() - int(claims.get("sat", claims["iat"])) > SESSION_MAX_AGE:
            raise unauthorized("session too old; log in again")
        extra = list(prefetch(claims["sub"])) if prefetch else []
        head = [revoked_session_key(claims["sid"]), session_generation_key(claims["sub"])]
        try:
            values = await self.redis.mget([*head, *extra])
        except RedisError as exc:
            raise unavailable("cannot check the session right now") from exc
        if values[0] is not None or int(values[1] or 0) > int(claims.get("gen", 0)):
            raise unauthorized("session ended")
        return Caller(
            msisdn=claims["sub"],
            session_id=claims["sid"],
            method=(claims.get("amr") or ["?"])[0],
            owner_since=from_claim(claims.get("owner_since")),
            prefetched={
                k: v if isinstance(v, bytes) else None
                for k, v in zip(extra, values[len(head) :], strict=True)
            },
        )


KeysFor = Callable[[str], Sequence[str]]
"""The Redis keys a route wants for a subscriber (by MSISDN)."""


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    return token.strip()


async def caller_of(request: Request, prefetch: KeysFor | None = None) -> Caller:
    """The request's caller; with `prefetch`, the Redis values of the keys it names for the
    subscriber come in the session check's round trip (for a hot read such as the balances)."""
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(_bearer(request), prefetch)


@declare_errors(401)
async def current_caller(request: Request) -> Caller:
    """Dependency of every subscriber route. Its parameters are what FastAPI reads from the
    request and documents, so nothing but the request may stand there (a callable parameter
    became a query parameter whose schema broke every /openapi.json)."""
    return await caller_of(request)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """Writes jwt_ed25519.pem (private, 0600) and jwt_ed25519.pub.pem unless they exist."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "jwt_ed25519.pem", directory / "jwt_ed25519.pub.pem"
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private_path, public_path


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the platform's token-signing key pair")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    private_path, public_path = generate_keypair(args.directory)
    print(f"{private_path}\n{public_path}")


if __name__ == "__main__":
    main()
