"""The login limits: code sends and failed logins, kept in Redis (servicekit.limits).

Code sends are fixed-window budgets, checked and counted in one step, the client's own first:
only an allowed send counts anywhere, so a client over its own limit spends nobody's budget.
Failed logins are tries reserved before the comparison, counted per (number, client), per
client and per number; past a limit that scope is locked, for longer each time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

from prometheus_client import Counter
from redis.asyncio import Redis

from servicekit.errors import too_many, unavailable
from servicekit.limits import Backoff, Budget, Locked, Scope, TryLimiter, WindowLimiter

from .domain.otp import GuessPolicy, OtpPolicy, number_prefix

log = logging.getLogger(__name__)
LOGINS = Counter("auth_logins_total", "Login attempts", ["service", "method", "result"])
OTP_SENT = Counter("otp_sent_total", "OTP sends", ["service", "result"])
AUTH_LOCKS = Counter(
    "auth_locks_total", "Keys locked after too many failed logins", ["service", "method", "scope"]
)
_SCOPE_NAMES = ("number_client", "client", "number")


@dataclass(frozen=True)
class _SendBudget:
    """What a refusal by one of the send budgets answers."""

    budget: Budget
    refusal: str  # resend_too_soon | number | client | block | overall


class LoginLimits:
    def __init__(self, redis: Redis, policy: OtpPolicy, guesses: GuessPolicy, service: str) -> None:
        self.policy = policy
        self.guesses = guesses
        self.service = service
        self.windows = WindowLimiter(redis)
        self.tries = TryLimiter(
            redis,
            "auth",
            Backoff(
                window_seconds=guesses.window_seconds,
                first_lock_seconds=guesses.lock_base_seconds,
                longest_lock_seconds=guesses.lock_max_seconds,
                strikes_remembered_seconds=guesses.strikes_remembered_seconds,
            ),
        )

    # -- code sends ------------------------------------------------------------------------------

    def _send_budgets(self, msisdn: str, client: str) -> list[_SendBudget]:
        p = self.policy
        window = p.send_window_seconds
        return [
            _SendBudget(Budget(f"otp:sends:client:{client}", p.sends_per_client, window), "client"),
            _SendBudget(Budget("otp:sends:all", p.sends_overall, window), "overall"),
            _SendBudget(
                Budget(f"otp:sends:prefix:{number_prefix(msisdn)}", p.sends_per_prefix, window), "block"
            ),
            _SendBudget(Budget(f"otp:last:{msisdn}:{client}", 1, p.resend_after_seconds), "resend_too_soon"),
            _SendBudget(Budget(f"otp:sends:{msisdn}:{client}", p.sends_per_number_client, window), "number"),
            _SendBudget(Budget(f"otp:sends:{msisdn}", p.sends_per_number, window), "number"),
        ]

    async def take_send(self, msisdn: str, client: str) -> None:
        """Count a code send for the number from the client, or raise why not."""
        locked = await self.tries.locked([self.scopes("otp", msisdn, client)[0]])
        if locked is not None:
            raise too_many("locked_out", "too many failed logins from here; try again later", locked.seconds)
        budgets = self._send_budgets(msisdn, client)
        over = await self.windows.take([b.budget for b in budgets])
        if over is None:
            OTP_SENT.labels(self.service, "queued").inc()
            return
        self._refuse_send(budgets[over.index].refusal, over.retry_after)

    def _refuse_send(self, refusal: str, seconds: int) -> NoReturn:
        if refusal == "resend_too_soon":
            raise too_many("resend_too_soon", f"wait {seconds}s before asking for another code", seconds)
        label = {"number": "rate_limited", "client": "client_limited"}.get(refusal, "budget")
        OTP_SENT.labels(self.service, label).inc()
        if label == "budget":
            log.warning("OTP budget exhausted", extra={"budget": refusal})
            raise unavailable("codes cannot be sent right now; try again later", retry_after=seconds)
        raise too_many("too_many_codes", "too many codes requested; try again later", seconds)

    # -- failed logins -----------------------------------------------------------------------------

    def scopes(self, method: str, msisdn: str, client: str) -> list[Scope]:
        """(number, client), client, number. A login forgets the (number, client) failures:
        the owner got in from there."""
        g = self.guesses
        return [
            Scope(f"{method}:{msisdn}:{client}", g.per_number_client, forget_on_success=True),
            Scope(f"client:{client}", g.per_client),
            Scope(f"{method}:{msisdn}", g.per_number),
        ]

    async def reserve(self, method: str, msisdn: str, client: str) -> list[Scope]:
        """Reserve one try before anything is compared; raises when a scope is locked."""
        scopes = self.scopes(method, msisdn, client)
        locked = await self.tries.reserve(scopes)
        if locked is not None:
            self._refuse_locked(method, locked)
        return scopes

    async def release(self, scopes: list[Scope]) -> None:
        await self.tries.release(scopes)

    def _refuse_locked(self, method: str, locked: Locked) -> NoReturn:
        label = "password" if method == "pwd" else "otp"
        LOGINS.labels(self.service, label, "locked").inc()
        if locked.new:
            AUTH_LOCKS.labels(self.service, label, _SCOPE_NAMES[locked.index]).inc()
        raise too_many("locked_out", "too many failed logins; try again later", locked.seconds)
