"""Logins: carrier header enrichment, OTP by SMS, portal password; sessions and tokens.

Every limit lives in Redis and is checked and counted in one step (login_limits.py), so
concurrent requests cannot slip past it: a login attempt is *reserved* before the code or
password is compared (twenty parallel guesses get five tries, not twenty), and two verifies of
one code see one winner (the code is checked and consumed by one script). Limits are keyed by
(number, client), by client and by number, and only what is allowed is counted, so nobody can
lock a subscriber out from somewhere else.
If Redis does not answer, logins are refused (503): a limiter that fails open would let an
attacker guess codes while it is down.

Sessions end when they should: each number has a session generation in Redis that a
password change or a change of the subscription's owner or status raises, ending every
session of the number; refresh re-checks the subscription and no session outlives
SESSION_MAX_AGE.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.auth import (
    SESSION_MAX_AGE,
    Caller,
    TokenSigner,
    revoked_session_key,
    session_generation_key,
)
from servicekit.errors import ApiError, unavailable
from servicekit.mongo import Store

from .domain.devices import DeviceProof
from .domain.otp import GuessPolicy, OtpPolicy
from .domain.provisioning import owner_since_of
from .login_limits import DEVICE, LOGINS, LoginLimits, is_known_device
from .otp_codes import NO_CODE, RIGHT, WRONG, OtpCodes
from .otp_queue import OtpQueue
from .store import PORTAL_ACCOUNTS, SUBSCRIBERS

log = logging.getLogger(__name__)
T = TypeVar("T")

OTP_LOCKOUTS = Counter("otp_lockouts_total", "Codes burnt after too many wrong tries", ["service"])

# Refresh tokens rotate on use; presenting a rotated one again means it was stolen: the
# whole session is revoked.
_ROTATE_REFRESH = """
local session = redis.call('GET', KEYS[1])
if session then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], session, 'EX', ARGV[1])
  return {1, session}
end
local used = redis.call('GET', KEYS[2])
if used then return {2, used} end
return {0, ''}
"""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    msisdn: str
    session_id: str
    device_token: str


@dataclass(frozen=True)
class _Session:
    """What a refresh token stands for (stored under its hash)."""

    msisdn: str
    session_id: str
    method: str
    generation: int
    started_at: int
    device_id: str = ""

    def encode(self) -> str:
        return "|".join(
            (
                self.msisdn,
                self.session_id,
                self.method,
                str(self.generation),
                str(self.started_at),
                self.device_id,
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> _Session:
        parts = raw.decode().split("|")
        # Sessions from before generations were kept: generation 0, started now; from before
        # known devices: a device id of its own from now on.
        generation, started = (int(parts[3]), int(parts[4])) if len(parts) >= 5 else (0, int(time.time()))
        device = parts[5] if len(parts) >= 6 and parts[5] else DeviceProof.new_device_id()
        return cls(parts[0], parts[1], parts[2], generation, started, device)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        *,
        store: Store,
        redis: Redis,
        signer: TokenSigner,
        queue: OtpQueue,
        pepper: bytes,
        service: str,
        refresh_ttl: int,
        gateway_key: str,
        policy: OtpPolicy | None = None,
        guesses: GuessPolicy | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.signer = signer
        self.queue = queue
        self.pepper = pepper
        self.service = service
        self.refresh_ttl = refresh_ttl
        self.gateway_key = gateway_key.encode()
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        self.limits = LoginLimits(redis, policy or OtpPolicy(), guesses or GuessPolicy(), service)
        self.codes = OtpCodes(redis, pepper, queue)
        self.devices = DeviceProof.from_pepper(pepper)
        self._rotate = redis.register_script(_ROTATE_REFRESH)

    @property
    def policy(self) -> OtpPolicy:
        """How codes are made and how many may be sent (the limits read it on every request)."""
        return self.limits.policy

    @policy.setter
    def policy(self, policy: OtpPolicy) -> None:
        self.limits.policy = policy

    # -- header enrichment ----------------------------------------------------------------

    def gateway_verified(self, presented_key: str | None) -> bool:
        return presented_key is not None and hmac.compare_digest(presented_key.encode(), self.gateway_key)

    async def header_login(self, msisdn: str) -> Tokens:
        owner_since = await self._require_active_subscriber(msisdn, "header")
        return await self._new_session(msisdn, "header", owner_since)

    # -- OTP ------------------------------------------------------------------------------------

    async def request_otp(self, msisdn: str, client: str, device_token: str | None = None) -> int:
        """Queues a code for the number; returns seconds until it may be asked again.

        The answer is the same, and as fast, whether or not the number is ours: the code is
        only queued here; the sender checks the subscription and sends the SMS."""
        p = self.policy
        requester = await self.requester(msisdn, client, device_token)
        await self._redis(self.limits.take_send(msisdn, requester))
        known = is_known_device(requester)
        await self._redis(
            self.codes.issue(
                msisdn, requester, digits=p.digits, ttl_seconds=p.ttl_seconds, known_device=known
            )
        )
        return p.resend_after_seconds

    async def verify_otp(
        self, msisdn: str, code: str, client: str, device_token: str | None = None
    ) -> Tokens:
        requester = await self.check_otp(msisdn, code, client, device_token)
        owner_since = await self._require_active_subscriber(msisdn, "otp")
        LOGINS.labels(self.service, "otp", "ok").inc()
        return await self._new_session(msisdn, "otp", owner_since, _device_id(requester))

    async def check_otp(self, msisdn: str, code: str, client: str, device_token: str | None = None) -> str:
        """Consumes the valid code the requester asked for, or raises; the attempt is reserved
        first. Returns the requester (see login_limits)."""
        requester = await self.requester(msisdn, client, device_token)
        scopes = await self._redis(self.limits.reserve("otp", msisdn, requester))
        status, left = await self._redis(
            self.codes.check(msisdn, requester, code, max_wrong=self.policy.max_wrong)
        )
        if status == RIGHT:
            await self._redis(self.limits.release(scopes))
            return requester
        LOGINS.labels(self.service, "otp", "refused").inc()
        if status == NO_CODE:
            raise ApiError(401, "code_expired", "no valid code for this number; request a new one")
        if status == WRONG:
            raise ApiError(401, "wrong_code", f"wrong code; {left} attempts left", attempts_left=left)
        OTP_LOCKOUTS.labels(self.service).inc()
        raise ApiError(401, "code_burnt", "too many wrong codes for this code; request a new one")

    async def requester(self, msisdn: str, client: str, device_token: str | None) -> str:
        """`device:<id>` for a valid proof of a known device of this number, else the client."""
        if not device_token:
            return client
        generation = int(await self._redis(self.redis.get(session_generation_key(msisdn))) or 0)
        device = self.devices.device_of(device_token, msisdn, generation)
        return f"{DEVICE}{device}" if device else client

    # -- portal password --------------------------------------------------------------------------

    async def password_login(
        self, msisdn: str, password: str, client: str, device_token: str | None = None
    ) -> Tokens:
        requester = await self.check_password(msisdn, password, client, device_token)
        owner_since = await self._require_active_subscriber(msisdn, "password")
        return await self._new_session(msisdn, "password", owner_since, _device_id(requester))

    async def check_password(
        self, msisdn: str, password: str, client: str, device_token: str | None = None
    ) -> str:
        """Raises unless `password` is the number's; the attempt is reserved before the hash
        is compared, so parallel guesses cannot pass the limit. Returns the requester."""
        requester = await self.requester(msisdn, client, device_token)
        scopes = await self._redis(self.limits.reserve("pwd", msisdn, requester))
        account = await self.store[PORTAL_ACCOUNTS].find_one({"_id": msisdn})
        stored = account["password_hash"] if account else _DUMMY_HASH  # same work either way
        if not await asyncio.to_thread(self._password_matches, stored, password) or account is None:
            LOGINS.labels(self.service, "password", "refused").inc()
            raise ApiError(401, "bad_credentials", "wrong number or password")
        await self._redis(self.limits.release(scopes))
        return requester

    def _password_matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def change_password(
        self,
        caller: Caller,
        password: str,
        client: str,
        *,
        current_password: str | None,
        otp_code: str | None,
        device_token: str | None = None,
    ) -> Tokens:
        """Sets the portal password once the caller proves it again (the current password or
        a fresh code), ends every session of the number, and opens a new one for the caller."""
        if current_password is not None:
            requester = await self.check_password(caller.msisdn, current_password, client, device_token)
        elif otp_code is not None:
            requester = await self.check_otp(caller.msisdn, otp_code, client, device_token)
        else:
            raise ApiError(
                403,
                "reauthentication_required",
                "send current_password, or otp_code from a code requested at POST /api/v1/auth/otp",
            )
        digest = await asyncio.to_thread(self.hasher.hash, password)
        await self.store[PORTAL_ACCOUNTS].update_one(
            {"_id": caller.msisdn},
            {"$set": {"password_hash": digest, "updated_at": time.time()}},
            upsert=True,
        )
        await self.end_all_sessions(caller.msisdn)
        device = _device_id(requester)
        return await self._new_session(caller.msisdn, caller.method, caller.owner_since, device)

    # -- sessions ----------------------------------------------------------------------------------

    async def end_all_sessions(self, msisdn: str) -> None:
        """Every access and refresh token of the number stops working at once."""
        await self._redis(self.redis.incr(session_generation_key(msisdn)))

    async def forget_owner(self, msisdn: str) -> None:
        """The number changed hands: the previous owner's sessions and password are gone."""
        await self.end_all_sessions(msisdn)
        await self.store[PORTAL_ACCOUNTS].delete_one({"_id": msisdn})

    async def _new_session(
        self, msisdn: str, method: str, owner_since: datetime, device_id: str | None = None
    ) -> Tokens:
        """A session; the device keeps its id when it proved it is a known device."""
        generation = int(await self._redis(self.redis.get(session_generation_key(msisdn))) or 0)
        device = device_id or DeviceProof.new_device_id()
        session = _Session(msisdn, uuid.uuid4().hex, method, generation, int(time.time()), device)
        refresh = secrets.token_urlsafe(32)
        await self._store_refresh(refresh, session)
        LOGINS.labels(self.service, method, "ok").inc()
        return self._tokens(session, refresh, owner_since)

    def _refresh_ttl(self, session: _Session) -> int:
        return max(1, min(self.refresh_ttl, session.started_at + SESSION_MAX_AGE - int(time.time())))

    async def _store_refresh(self, refresh: str, session: _Session) -> None:
        key = f"refresh:{_hash_token(refresh)}"
        await self._redis(self.redis.set(key, session.encode(), ex=self._refresh_ttl(session)))

    def _tokens(self, session: _Session, refresh: str, owner_since: datetime) -> Tokens:
        access = self.signer.issue(
            session.msisdn,
            session.session_id,
            session.method,
            session.generation,
            session.started_at,
            owner_since=owner_since,  # the number's tenancy, read from the registry each time
        )
        return Tokens(
            access_token=access,
            expires_in=self.signer.ttl,
            refresh_token=refresh,
            refresh_expires_in=self._refresh_ttl(session),
            msisdn=session.msisdn,
            session_id=session.session_id,
            device_token=self.devices.issue(session.msisdn, session.device_id, session.generation),
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        digest = _hash_token(refresh_token)
        status, raw = await self._redis(
            self._rotate(keys=[f"refresh:{digest}", f"refresh:used:{digest}"], args=[self.refresh_ttl])
        )
        if status == 0:
            raise ApiError(401, "invalid_refresh_token", "refresh token unknown or expired; log in again")
        session = _Session.decode(raw)
        if status == 2:
            await self._revoke(session.session_id)
            log.warning("refresh token reused; session revoked", extra={"session": session.session_id})
            raise ApiError(401, "refresh_token_reused", "this refresh token was already used; log in again")
        revoked, generation = await self._redis(
            self.redis.mget(revoked_session_key(session.session_id), session_generation_key(session.msisdn))
        )
        if revoked is not None or int(generation or 0) > session.generation:
            raise ApiError(401, "session_ended", "session ended; log in again")
        if time.time() - session.started_at >= SESSION_MAX_AGE:
            raise ApiError(401, "session_ended", "session too old; log in again")
        owner_since = await self.active_tenancy(session.msisdn)
        if owner_since is None:
            raise ApiError(401, "session_ended", "this number is no longer an active subscription")
        refresh = secrets.token_urlsafe(32)
        await self._store_refresh(refresh, session)
        return self._tokens(session, refresh, owner_since)

    async def logout(self, caller: Caller, refresh_token: str | None) -> None:
        await self._revoke(caller.session_id)
        if refresh_token:
            await self._redis(self.redis.delete(f"refresh:{_hash_token(refresh_token)}"))

    async def _revoke(self, session_id: str) -> None:
        # Outlives any access token of the session (and refresh rotation checks it too).
        await self._redis(self.redis.set(revoked_session_key(session_id), b"1", ex=self.refresh_ttl))

    # -- helpers --------------------------------------------------------------------------------------

    async def is_active_subscriber(self, msisdn: str) -> bool:
        return await self.active_tenancy(msisdn) is not None

    async def active_tenancy(self, msisdn: str) -> datetime | None:
        """When the current owner's tenancy began, for an active subscription; else None."""
        doc = await self.store[SUBSCRIBERS].find_one(
            {"_id": msisdn}, {"status": 1, "owner_since": 1, "since": 1}
        )
        if doc is None or doc.get("status") != "active":
            return None
        return owner_since_of(doc)

    async def _require_active_subscriber(self, msisdn: str, method: str) -> datetime:
        owner_since = await self.active_tenancy(msisdn)
        if owner_since is None:
            LOGINS.labels(self.service, method, "not_subscriber").inc()
            raise ApiError(403, "not_a_subscriber", "this number is not an active MobiFone subscription")
        return owner_since

    async def _redis(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            raise unavailable("login is temporarily unavailable") from exc


def _device_id(requester: str) -> str | None:
    return requester.removeprefix(DEVICE) if is_known_device(requester) else None


_DUMMY_HASH = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1).hash("not-a-real-password")
