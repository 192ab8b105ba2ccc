"""Logins: carrier header enrichment, OTP by SMS, portal password; sessions and tokens.

Every limit lives in Redis and is checked and updated by one Lua script, so concurrent
requests cannot slip past it: a login attempt is *reserved* before the code or password is
compared (twenty parallel guesses get five tries, not twenty), and two verifies of one code
see one winner. Limits are keyed by (number, client), by client and by number, and only
what is allowed is counted, so nobody can lock a subscriber out from somewhere else.
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
from typing import NoReturn, TypeVar

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
from servicekit.errors import ApiError, too_many, unavailable
from servicekit.mongo import Store

from .domain.otp import GuessPolicy, OtpPolicy, code_digest, new_code, number_prefix
from .domain.provisioning import owner_since_of
from .otp_queue import OtpQueue
from .store import PORTAL_ACCOUNTS, SUBSCRIBERS

log = logging.getLogger(__name__)
T = TypeVar("T")

LOGINS = Counter("auth_logins_total", "Login attempts", ["service", "method", "result"])
OTP_SENT = Counter("otp_sent_total", "OTP sends", ["service", "result"])
OTP_LOCKOUTS = Counter("otp_lockouts_total", "Codes burnt after too many wrong tries", ["service"])
AUTH_LOCKS = Counter(
    "auth_locks_total", "Keys locked after too many failed logins", ["service", "method", "scope"]
)

# Send a code: the client's own limit and the budgets first, then the number's; only an
# allowed send counts anywhere. The code's digest is stored and the encrypted message queued
# in the same step, so the answer never waits for the SMS centre.
_SEND_OTP = """
local lock_ttl = redis.call('TTL', KEYS[8])
if lock_ttl > 0 then return {1, lock_ttl} end
local window = tonumber(ARGV[4])
local function used(key) return tonumber(redis.call('GET', key) or '0') end
local function left(key) local t = redis.call('TTL', key); if t < 1 then return window end; return t end
if used(KEYS[4]) >= tonumber(ARGV[7]) then return {4, left(KEYS[4])} end
if used(KEYS[5]) >= tonumber(ARGV[8]) then return {5, left(KEYS[5])} end
if used(KEYS[6]) >= tonumber(ARGV[9]) then return {6, left(KEYS[6])} end
local wait = redis.call('PTTL', KEYS[1])
if wait > 0 then return {2, math.ceil(wait / 1000)} end
if used(KEYS[2]) >= tonumber(ARGV[5]) then return {3, left(KEYS[2])} end
if used(KEYS[3]) >= tonumber(ARGV[6]) then return {3, left(KEYS[3])} end
for i = 2, 6 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], window) end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
redis.call('DEL', KEYS[7])
redis.call('HSET', KEYS[7], 'digest', ARGV[1], 'wrong', 0)
redis.call('EXPIRE', KEYS[7], ARGV[2])
redis.call('RPUSH', KEYS[9], ARGV[10])
return {0, 0}
"""

# Reserve one login attempt before comparing anything. Keys come in threes per scope
# (failures, lock, strikes) for (number, client), client and number. Past a scope's limit the
# scope is locked for base * 2^(strikes-1) seconds (capped): each lock of the same key lasts
# longer. Failures overall are watched (auth_logins_total, auth_locks_total and their alerts)
# but not enforced: a platform-wide lock would let an attacker lock everyone out.
_RESERVE = """
local function reserve()
  for i = 2, 8, 3 do
    local t = redis.call('TTL', KEYS[i])
    if t > 0 then return {(i + 1) / 3, t} end
  end
  local limits = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
  for s = 1, 3 do
    local fails = KEYS[s * 3 - 2]
    if tonumber(redis.call('GET', fails) or '0') >= limits[s] then
      local strikes = redis.call('INCR', KEYS[s * 3])
      redis.call('EXPIRE', KEYS[s * 3], ARGV[7])
      local lock = math.min(tonumber(ARGV[5]) * 2 ^ (strikes - 1), tonumber(ARGV[6]))
      redis.call('SET', KEYS[s * 3 - 1], '1', 'EX', lock)
      redis.call('DEL', fails)
      return {-s, lock}
    end
  end
  for s = 1, 3 do
    if redis.call('INCR', KEYS[s * 3 - 2]) == 1 then redis.call('EXPIRE', KEYS[s * 3 - 2], ARGV[1]) end
  end
  return {0, 0}
end
"""

# A reserved attempt that succeeded was not a failure: give it back, and forget this client's
# failures and strikes for the number (the owner got in).
_RELEASE = """
local function release()
  redis.call('DEL', KEYS[1], KEYS[3])
  for _, key in ipairs({KEYS[4], KEYS[7]}) do
    if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
  end
end
"""

_RESERVE_ATTEMPT = _RESERVE + "return reserve()"
_RELEASE_ATTEMPT = _RELEASE + "release()\nreturn 1"

# A code is checked in Redis, so reserving the attempt, the check and giving the attempt back
# are one step (one round trip): {lock status, check status, detail}. Single use: compare,
# then delete on success or count the miss; a code with too many misses is burnt (the owner
# asks for a new one; nobody is locked out by it). KEYS[10] is the code, ARGV[8..9] the
# digest presented and the misses allowed.
_CHECK_OTP = (
    _RESERVE
    + _RELEASE
    + """
local reserved = reserve()
if reserved[1] ~= 0 then return {reserved[1], reserved[2], 0} end
local digest = redis.call('HGET', KEYS[10], 'digest')
if not digest then return {0, 0, 0} end
if digest == ARGV[8] then
  redis.call('DEL', KEYS[10])
  release()
  return {0, 1, 0}
end
local wrong = redis.call('HINCRBY', KEYS[10], 'wrong', 1)
if wrong >= tonumber(ARGV[9]) then
  redis.call('DEL', KEYS[10])
  return {0, -2, 0}
end
return {0, 2, tonumber(ARGV[9]) - wrong}
"""
)

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

_SCOPES = {1: "number_client", 2: "client", 3: "number"}


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    msisdn: str
    session_id: str


@dataclass(frozen=True)
class _Session:
    """What a refresh token stands for (stored under its hash)."""

    msisdn: str
    session_id: str
    method: str
    generation: int
    started_at: int

    def encode(self) -> str:
        return f"{self.msisdn}|{self.session_id}|{self.method}|{self.generation}|{self.started_at}"

    @classmethod
    def decode(cls, raw: bytes) -> _Session:
        parts = raw.decode().split("|")
        # Sessions from before generations were kept: generation 0, started now.
        generation, started = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (0, int(time.time()))
        return cls(parts[0], parts[1], parts[2], generation, started)


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
        self.policy = policy or OtpPolicy()
        self.guesses = guesses or GuessPolicy()
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        self._send_otp = redis.register_script(_SEND_OTP)
        self._check_otp = redis.register_script(_CHECK_OTP)
        self._rotate = redis.register_script(_ROTATE_REFRESH)
        self._reserve = redis.register_script(_RESERVE_ATTEMPT)
        self._release = redis.register_script(_RELEASE_ATTEMPT)

    # -- header enrichment ----------------------------------------------------------------

    def gateway_verified(self, presented_key: str | None) -> bool:
        return presented_key is not None and hmac.compare_digest(presented_key.encode(), self.gateway_key)

    async def header_login(self, msisdn: str) -> Tokens:
        owner_since = await self._require_active_subscriber(msisdn, "header")
        return await self._new_session(msisdn, "header", owner_since)

    # -- OTP ------------------------------------------------------------------------------------

    async def request_otp(self, msisdn: str, client: str) -> int:
        """Queues a code for the number; returns seconds until it may be asked again.

        The answer is the same, and as fast, whether or not the number is ours: the code is
        only queued here; the sender checks the subscription and sends the SMS."""
        p = self.policy
        code = new_code(p.digits)
        keys = [
            f"otp:last:{msisdn}:{client}",
            f"otp:sends:{msisdn}:{client}",
            f"otp:sends:{msisdn}",
            f"otp:sends:client:{client}",
            "otp:sends:all",
            f"otp:sends:prefix:{number_prefix(msisdn)}",
            f"otp:code:{msisdn}",
            self._keys("otp", msisdn, client)[1],
            self.queue.key,
        ]
        args: list[str | int | bytes] = [
            code_digest(self.pepper, msisdn, code),
            p.ttl_seconds,
            p.resend_after_seconds,
            p.send_window_seconds,
            p.sends_per_number_client,
            p.sends_per_number,
            p.sends_per_client,
            p.sends_overall,
            p.sends_per_prefix,
            self.queue.seal(msisdn, code),
        ]
        status, seconds = await self._redis(self._send_otp(keys=keys, args=args))
        if status == 0:
            OTP_SENT.labels(self.service, "queued").inc()
            return p.resend_after_seconds
        if status == 1:
            raise too_many("locked_out", "too many failed logins from here; try again later", seconds)
        if status == 2:
            raise too_many("resend_too_soon", f"wait {seconds}s before asking for another code", seconds)
        OTP_SENT.labels(self.service, {3: "rate_limited", 4: "client_limited"}.get(status, "budget")).inc()
        if status in (5, 6):
            log.warning("OTP budget exhausted", extra={"budget": "overall" if status == 5 else "prefix"})
            raise unavailable("codes cannot be sent right now; try again later", retry_after=seconds)
        raise too_many("too_many_codes", "too many codes requested; try again later", seconds)

    async def verify_otp(self, msisdn: str, code: str, client: str) -> Tokens:
        await self.check_otp(msisdn, code, client)
        owner_since = await self._require_active_subscriber(msisdn, "otp")
        LOGINS.labels(self.service, "otp", "ok").inc()
        return await self._new_session(msisdn, "otp", owner_since)

    async def check_otp(self, msisdn: str, code: str, client: str) -> None:
        """Consumes a valid code for the number, or raises; the attempt is reserved first."""
        keys = [*self._keys("otp", msisdn, client), f"otp:code:{msisdn}"]
        args: list[str | int] = [
            *self._guess_args(),
            code_digest(self.pepper, msisdn, code),
            self.policy.max_wrong,
        ]
        locked, status, detail = await self._redis(self._check_otp(keys=keys, args=args))
        if locked:
            self._refuse_locked("otp", locked, detail)
        if status == 1:
            return
        LOGINS.labels(self.service, "otp", "refused").inc()
        if status == 0:
            raise ApiError(401, "code_expired", "no valid code for this number; request a new one")
        if status == 2:
            raise ApiError(401, "wrong_code", f"wrong code; {detail} attempts left", attempts_left=detail)
        OTP_LOCKOUTS.labels(self.service).inc()
        raise ApiError(401, "code_burnt", "too many wrong codes for this code; request a new one")

    # -- portal password --------------------------------------------------------------------------

    async def password_login(self, msisdn: str, password: str, client: str) -> Tokens:
        await self.check_password(msisdn, password, client)
        owner_since = await self._require_active_subscriber(msisdn, "password")
        return await self._new_session(msisdn, "password", owner_since)

    async def check_password(self, msisdn: str, password: str, client: str) -> None:
        """Raises unless `password` is the number's; the attempt is reserved before the hash
        is compared, so parallel guesses cannot pass the limit."""
        keys = await self._reserve_attempt("pwd", msisdn, client)
        account = await self.store[PORTAL_ACCOUNTS].find_one({"_id": msisdn})
        stored = account["password_hash"] if account else _DUMMY_HASH  # same work either way
        if not await asyncio.to_thread(self._password_matches, stored, password) or account is None:
            LOGINS.labels(self.service, "password", "refused").inc()
            raise ApiError(401, "bad_credentials", "wrong number or password")
        await self._redis(self._release(keys=keys))

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
    ) -> Tokens:
        """Sets the portal password once the caller proves it again (the current password or
        a fresh code), ends every session of the number, and opens a new one for the caller."""
        if current_password is not None:
            await self.check_password(caller.msisdn, current_password, client)
        elif otp_code is not None:
            await self.check_otp(caller.msisdn, otp_code, client)
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
        return await self._new_session(caller.msisdn, caller.method, caller.owner_since)

    # -- sessions ----------------------------------------------------------------------------------

    async def end_all_sessions(self, msisdn: str) -> None:
        """Every access and refresh token of the number stops working at once."""
        await self._redis(self.redis.incr(session_generation_key(msisdn)))

    async def forget_owner(self, msisdn: str) -> None:
        """The number changed hands: the previous owner's sessions and password are gone."""
        await self.end_all_sessions(msisdn)
        await self.store[PORTAL_ACCOUNTS].delete_one({"_id": msisdn})

    async def _new_session(self, msisdn: str, method: str, owner_since: datetime) -> Tokens:
        generation = int(await self._redis(self.redis.get(session_generation_key(msisdn))) or 0)
        session = _Session(msisdn, uuid.uuid4().hex, method, generation, int(time.time()))
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

    # -- limits -----------------------------------------------------------------------------------------

    def _keys(self, method: str, msisdn: str, client: str) -> list[str]:
        """Failures, lock and strikes for (number, client), the client and the number."""
        scopes = (f"{method}:{msisdn}:{client}", f"client:{client}", f"{method}:{msisdn}")
        return [f"auth:{kind}:{scope}" for scope in scopes for kind in ("fail", "lock", "strikes")]

    def _guess_args(self) -> list[int]:
        g = self.guesses
        return [
            g.window_seconds,
            g.per_number_client,
            g.per_client,
            g.per_number,
            g.lock_base_seconds,
            g.lock_max_seconds,
            g.strikes_remembered_seconds,
        ]

    async def _reserve_attempt(self, method: str, msisdn: str, client: str) -> list[str]:
        keys = self._keys(method, msisdn, client)
        status, seconds = await self._redis(self._reserve(keys=keys, args=self._guess_args()))
        if status:
            self._refuse_locked(method, status, seconds)
        return keys

    def _refuse_locked(self, method: str, status: int, seconds: int) -> NoReturn:
        """A scope is locked: `status` > 0 was already, < 0 by this attempt."""
        label = "password" if method == "pwd" else "otp"
        LOGINS.labels(self.service, label, "locked").inc()
        if status < 0:
            AUTH_LOCKS.labels(self.service, label, _SCOPES[-status]).inc()
        raise too_many("locked_out", "too many failed logins; try again later", seconds)

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


_DUMMY_HASH = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1).hash("not-a-real-password")
