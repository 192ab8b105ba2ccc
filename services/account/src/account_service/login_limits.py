"""The login limits: code sends and failed logins, kept in Redis (servicekit.limits).

Who asks is a *requester*: a known device of the number (`device:<id>`, its signed proof
checked: domain/devices.py), or else the client (an address, an IPv6 /64, or a subscriber on
the carrier's network: servicekit.http.client_key).

- Code sends, at the request: the requester's own budgets first, then the number's; only an
  allowed send counts anywhere, so a client over its own limit spends nobody's budget. A known
  device has its own budget for its number and touches no other: strangers cannot spend it.
  IPv6 clients also share a budget per /48.
- Code sends, at the sender: the budget of the number's block of 100,000 and the platform's
  are charged only for codes really sent to a live subscriber, so requests for unassigned
  numbers spend neither (the request only checks they are not used up: a 503 then, the same
  for every number, so it tells nobody who is a subscriber).
- Failed logins: tries reserved before the comparison, counted per (requester, number) and
  per client (and per number for passwords: see GuessPolicy); past a limit that scope is
  locked, for longer each time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

from prometheus_client import Counter
from redis.asyncio import Redis

from servicekit.errors import too_many, unavailable
from servicekit.http import site_of
from servicekit.limits import Backoff, Budget, Locked, Scope, TryLimiter, WindowLimiter

from .domain.otp import GuessPolicy, OtpPolicy, number_prefix

log = logging.getLogger(__name__)
LOGINS = Counter("auth_logins_total", "Login attempts", ["service", "method", "result"])
OTP_SENT = Counter("otp_sent_total", "OTP sends", ["service", "result"])
AUTH_LOCKS = Counter(
    "auth_locks_total", "Keys locked after too many failed logins", ["service", "method", "scope"]
)
DEVICE = "device:"
_SCOPE_NAMES = ("number_client", "client", "number")  # in the order of LoginLimits.scopes


def is_known_device(requester: str) -> bool:
    return requester.startswith(DEVICE)


@dataclass(frozen=True)
class _SendBudget:
    """A send budget and what a refusal by it answers."""

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

    def _request_budgets(self, msisdn: str, requester: str) -> list[_SendBudget]:
        p = self.policy
        window = p.send_window_seconds
        resend = _SendBudget(
            Budget(f"otp:last:{msisdn}:{requester}", 1, p.resend_after_seconds), "resend_too_soon"
        )
        if is_known_device(requester):
            own = Budget(f"otp:sends:{msisdn}:{requester}", p.sends_per_device, window)
            return [resend, _SendBudget(own, "number")]
        budgets = [_SendBudget(Budget(f"otp:sends:client:{requester}", p.sends_per_client, window), "client")]
        site = site_of(requester)
        if site is not None:
            budgets.append(_SendBudget(Budget(f"otp:sends:site:{site}", p.sends_per_site, window), "client"))
        return [
            *budgets,
            resend,
            _SendBudget(
                Budget(f"otp:sends:{msisdn}:{requester}", p.sends_per_number_client, window), "number"
            ),
            _SendBudget(Budget(f"otp:sends:{msisdn}", p.sends_per_number, window), "number"),
        ]

    def _delivery_budgets(self, msisdn: str, known_device: bool) -> list[_SendBudget]:
        p = self.policy
        window = p.send_window_seconds
        overall = _SendBudget(Budget("otp:sends:all", p.sends_overall, window), "overall")
        if known_device:
            return [overall]
        block = Budget(f"otp:sends:prefix:{number_prefix(msisdn)}", p.sends_per_prefix, window)
        return [overall, _SendBudget(block, "block")]

    async def take_send(self, msisdn: str, requester: str) -> None:
        """Count a code send for the number from the requester, or raise why not."""
        locked = await self.tries.locked([self.scopes("otp", msisdn, requester)[0]])
        if locked is not None:
            raise too_many("locked_out", "too many failed logins from here; try again later", locked.seconds)
        shared = self._delivery_budgets(msisdn, is_known_device(requester))
        over = await self.windows.check([b.budget for b in shared])
        if over is not None:
            self._refuse_send(shared[over.index].refusal, over.retry_after)
        budgets = self._request_budgets(msisdn, requester)
        over = await self.windows.take([b.budget for b in budgets])
        if over is not None:
            self._refuse_send(budgets[over.index].refusal, over.retry_after)
        OTP_SENT.labels(self.service, "queued").inc()

    async def charge_delivery(self, msisdn: str, known_device: bool) -> bool:
        """The sender is about to send a code to a live subscriber: charge the block's and the
        platform's budgets; False (send nothing) when one is used up."""
        budgets = self._delivery_budgets(msisdn, known_device)
        over = await self.windows.take([b.budget for b in budgets])
        if over is None:
            return True
        log.warning("OTP budget exhausted", extra={"budget": budgets[over.index].refusal})
        OTP_SENT.labels(self.service, "budget").inc()
        return False

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

    def scopes(self, method: str, msisdn: str, requester: str) -> list[Scope]:
        """Where a try counts. A login forgets the (number, requester) failures: the owner got
        in from there."""
        g = self.guesses
        if is_known_device(requester):
            return [Scope(f"{method}:{msisdn}:{requester}", g.per_device, forget_on_success=True)]
        scopes = [
            Scope(f"{method}:{msisdn}:{requester}", g.per_number_client, forget_on_success=True),
            Scope(f"client:{requester}", g.per_client),
        ]
        if method == "pwd":
            scopes.append(Scope(f"{method}:{msisdn}", g.per_number))
        return scopes

    async def reserve(self, method: str, msisdn: str, requester: str) -> list[Scope]:
        """Reserve one try before anything is compared; raises when a scope is locked."""
        scopes = self.scopes(method, msisdn, requester)
        locked = await self.tries.reserve(scopes)
        if locked is not None:
            self._refuse_locked(method, requester, locked)
        return scopes

    async def release(self, scopes: list[Scope]) -> None:
        await self.tries.release(scopes)

    def _refuse_locked(self, method: str, requester: str, locked: Locked) -> NoReturn:
        label = "password" if method == "pwd" else "otp"
        LOGINS.labels(self.service, label, "locked").inc()
        if locked.new:
            scope = "device" if is_known_device(requester) else _SCOPE_NAMES[locked.index]
            AUTH_LOCKS.labels(self.service, label, scope).inc()
        raise too_many("locked_out", "too many failed logins; try again later", locked.seconds)
