"""Logins: carrier header enrichment, OTP by SMS, portal password; sessions and tokens.

Every limit lives in Redis and is checked and updated by one Lua script, so concurrent
requests cannot slip past it (two verifies of one code: one wins, the other sees it gone).
If Redis does not answer, logins are refused (503): a limiter that fails open would let an
attacker guess codes while it is down.
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
from typing import Protocol, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.auth import Caller, TokenSigner, revoked_session_key
from servicekit.errors import ApiError, too_many, unavailable
from servicekit.mongo import Store

from .domain.otp import OtpPolicy, code_digest, new_code, sms_text
from .store import PORTAL_ACCOUNTS, SUBSCRIBERS

log = logging.getLogger(__name__)
T = TypeVar("T")

LOGINS = Counter("auth_logins_total", "Login attempts", ["service", "method", "result"])
OTP_SENT = Counter("otp_sent_total", "OTP sends", ["service", "result"])
OTP_LOCKOUTS = Counter("otp_lockouts_total", "Numbers locked out after wrong codes", ["service"])

# Limits for one number and one client, and the code itself, decided atomically.
_SEND_OTP = """
local lock_ttl = redis.call('TTL', KEYS[1])
if lock_ttl > 0 then return {1, lock_ttl} end
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return {2, math.ceil(wait / 1000)} end
local window = tonumber(ARGV[4])
local per_number = redis.call('INCR', KEYS[3])
if per_number == 1 then redis.call('EXPIRE', KEYS[3], window) end
if per_number > tonumber(ARGV[5]) then return {3, redis.call('TTL', KEYS[3])} end
local per_client = redis.call('INCR', KEYS[4])
if per_client == 1 then redis.call('EXPIRE', KEYS[4], window) end
if per_client > tonumber(ARGV[6]) then return {4, redis.call('TTL', KEYS[4])} end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], 'digest', ARGV[1], 'wrong', 0)
redis.call('EXPIRE', KEYS[5], ARGV[2])
return {0, 0}
"""

# Single use and lock-out: compare, then delete on success or count the miss.
_VERIFY_OTP = """
local lock_ttl = redis.call('TTL', KEYS[2])
if lock_ttl > 0 then return {-1, lock_ttl} end
local digest = redis.call('HGET', KEYS[1], 'digest')
if not digest then return {0, 0} end
if digest == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1, 0}
end
local wrong = redis.call('HINCRBY', KEYS[1], 'wrong', 1)
if wrong >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  return {-2, tonumber(ARGV[3])}
end
return {2, tonumber(ARGV[2]) - wrong}
"""

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

# Wrong passwords: count, lock after too many.
_PASSWORD_FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then redis.call('SET', KEYS[2], '1', 'EX', ARGV[2]) end
return n
"""


class SmsSender(Protocol):
    async def send(self, destination: str, text: str) -> None: ...


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    msisdn: str
    session_id: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        *,
        store: Store,
        redis: Redis,
        signer: TokenSigner,
        sms: SmsSender,
        pepper: bytes,
        service: str,
        refresh_ttl: int,
        gateway_key: str,
        policy: OtpPolicy | None = None,
    ) -> None:
        self.store = store
        self.redis = redis
        self.signer = signer
        self.sms = sms
        self.pepper = pepper
        self.service = service
        self.refresh_ttl = refresh_ttl
        self.gateway_key = gateway_key.encode()
        self.policy = policy or OtpPolicy()
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        self._send_otp = redis.register_script(_SEND_OTP)
        self._verify_otp = redis.register_script(_VERIFY_OTP)
        self._rotate = redis.register_script(_ROTATE_REFRESH)
        self._password_failed = redis.register_script(_PASSWORD_FAILED)

    # -- header enrichment ----------------------------------------------------------------

    def gateway_verified(self, presented_key: str | None) -> bool:
        return presented_key is not None and hmac.compare_digest(presented_key.encode(), self.gateway_key)

    async def header_login(self, msisdn: str) -> Tokens:
        await self._require_active_subscriber(msisdn, "header")
        return await self._new_session(msisdn, "header")

    # -- OTP ------------------------------------------------------------------------------------

    async def request_otp(self, msisdn: str, client: str) -> int:
        """Sends a code if the number is an active subscriber; returns seconds until resend.

        The answer is the same whether or not the number is ours, so the endpoint cannot be
        used to learn who is a subscriber.
        """
        p = self.policy
        code = new_code(p.digits)
        keys = [
            f"otp:lock:{msisdn}",
            f"otp:last:{msisdn}",
            f"otp:count:{msisdn}",
            f"otp:client:{client}",
            f"otp:code:{msisdn}",
        ]
        args: list[str | int] = [
            code_digest(self.pepper, msisdn, code),
            p.ttl_seconds,
            p.resend_after_seconds,
            p.send_window_seconds,
            p.sends_per_window,
            p.sends_per_client_window,
        ]
        status, seconds = await self._redis(self._send_otp(keys=keys, args=args))
        if status == 1:
            raise too_many("locked_out", "too many wrong codes; try again later", seconds)
        if status == 2:
            raise too_many("resend_too_soon", f"wait {seconds}s before asking for another code", seconds)
        if status in (3, 4):
            OTP_SENT.labels(self.service, "rate_limited").inc()
            raise too_many("too_many_codes", "too many codes requested; try again later", seconds)
        if await self._is_active_subscriber(msisdn):
            await self._deliver(msisdn, code)
        else:
            OTP_SENT.labels(self.service, "not_subscriber").inc()
        return p.resend_after_seconds

    async def _deliver(self, msisdn: str, code: str) -> None:
        try:
            await self.sms.send(msisdn, sms_text(code, self.policy.ttl_seconds))
        except Exception as exc:
            OTP_SENT.labels(self.service, "failed").inc()
            log.error("sms delivery failed", extra={"error": repr(exc)})
            await self.redis.delete(f"otp:code:{msisdn}", f"otp:last:{msisdn}")
            raise unavailable("could not send the code right now; try again shortly") from exc
        OTP_SENT.labels(self.service, "sent").inc()

    async def verify_otp(self, msisdn: str, code: str) -> Tokens:
        p = self.policy
        keys = [f"otp:code:{msisdn}", f"otp:lock:{msisdn}"]
        args: list[str | int] = [code_digest(self.pepper, msisdn, code), p.max_wrong, p.lockout_seconds]
        status, detail = await self._redis(self._verify_otp(keys=keys, args=args))
        if status == 1:
            LOGINS.labels(self.service, "otp", "ok").inc()
            return await self._new_session(msisdn, "otp")
        LOGINS.labels(self.service, "otp", "refused").inc()
        if status == 0:
            raise ApiError(401, "code_expired", "no valid code for this number; request a new one")
        if status == 2:
            raise ApiError(401, "wrong_code", f"wrong code; {detail} attempts left", attempts_left=detail)
        if status == -2:
            OTP_LOCKOUTS.labels(self.service).inc()
        raise too_many("locked_out", "too many wrong codes; try again later", detail)

    # -- portal password --------------------------------------------------------------------------

    async def password_login(self, msisdn: str, password: str) -> Tokens:
        lock, fails = f"pwd:lock:{msisdn}", f"pwd:fail:{msisdn}"
        ttl = await self._redis(self.redis.ttl(lock))
        if ttl > 0:
            raise too_many("locked_out", "too many wrong passwords; try again later", ttl)
        account = await self.store[PORTAL_ACCOUNTS].find_one({"_id": msisdn})
        stored = account["password_hash"] if account else _DUMMY_HASH  # same work either way
        if not await asyncio.to_thread(self._password_matches, stored, password) or account is None:
            LOGINS.labels(self.service, "password", "refused").inc()
            await self._redis(
                self._password_failed(
                    keys=[fails, lock], args=[self.policy.max_wrong, self.policy.lockout_seconds]
                )
            )
            raise ApiError(401, "bad_credentials", "wrong number or password")
        await self._redis(self.redis.delete(fails))
        await self._require_active_subscriber(msisdn, "password")
        return await self._new_session(msisdn, "password")

    def _password_matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def set_password(self, caller: Caller, password: str) -> None:
        digest = await asyncio.to_thread(self.hasher.hash, password)
        await self.store[PORTAL_ACCOUNTS].update_one(
            {"_id": caller.msisdn},
            {"$set": {"password_hash": digest, "updated_at": time.time()}},
            upsert=True,
        )

    # -- sessions ----------------------------------------------------------------------------------

    async def _new_session(self, msisdn: str, method: str) -> Tokens:
        session_id = uuid.uuid4().hex
        refresh = secrets.token_urlsafe(32)
        await self._redis(
            self.redis.set(
                f"refresh:{_hash_token(refresh)}", f"{msisdn}|{session_id}|{method}", ex=self.refresh_ttl
            )
        )
        LOGINS.labels(self.service, method, "ok").inc()
        return self._tokens(msisdn, session_id, method, refresh)

    def _tokens(self, msisdn: str, session_id: str, method: str, refresh: str) -> Tokens:
        return Tokens(
            access_token=self.signer.issue(msisdn, session_id, method),
            expires_in=self.signer.ttl,
            refresh_token=refresh,
            refresh_expires_in=self.refresh_ttl,
            msisdn=msisdn,
            session_id=session_id,
        )

    async def refresh(self, refresh_token: str) -> Tokens:
        digest = _hash_token(refresh_token)
        status, session = await self._redis(
            self._rotate(keys=[f"refresh:{digest}", f"refresh:used:{digest}"], args=[self.refresh_ttl])
        )
        if status == 0:
            raise ApiError(401, "invalid_refresh_token", "refresh token unknown or expired; log in again")
        msisdn, session_id, method = session.decode().split("|")
        if status == 2:
            await self._revoke(session_id)
            log.warning("refresh token reused; session revoked", extra={"session": session_id})
            raise ApiError(401, "refresh_token_reused", "this refresh token was already used; log in again")
        if await self._redis(self.redis.exists(revoked_session_key(session_id))):
            raise ApiError(401, "session_ended", "session ended; log in again")
        refresh = secrets.token_urlsafe(32)
        await self._redis(
            self.redis.set(f"refresh:{_hash_token(refresh)}", session.decode(), ex=self.refresh_ttl)
        )
        return self._tokens(msisdn, session_id, method, refresh)

    async def logout(self, caller: Caller, refresh_token: str | None) -> None:
        await self._revoke(caller.session_id)
        if refresh_token:
            await self._redis(self.redis.delete(f"refresh:{_hash_token(refresh_token)}"))

    async def _revoke(self, session_id: str) -> None:
        # Outlives any access token of the session (and refresh rotation checks it too).
        await self._redis(self.redis.set(revoked_session_key(session_id), b"1", ex=self.refresh_ttl))

    # -- helpers --------------------------------------------------------------------------------------

    async def _is_active_subscriber(self, msisdn: str) -> bool:
        doc = await self.store[SUBSCRIBERS].find_one({"_id": msisdn}, {"status": 1})
        return doc is not None and doc.get("status") == "active"

    async def _require_active_subscriber(self, msisdn: str, method: str) -> None:
        if not await self._is_active_subscriber(msisdn):
            LOGINS.labels(self.service, method, "not_subscriber").inc()
            raise ApiError(403, "not_a_subscriber", "this number is not an active MobiFone subscription")

    async def _redis(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            raise unavailable("login is temporarily unavailable") from exc


_DUMMY_HASH = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1).hash("not-a-real-password")
