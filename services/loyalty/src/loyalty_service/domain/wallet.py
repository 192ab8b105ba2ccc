"""A member's points as a value: every change is a pure function of the state before it.

The points are kept in buckets by the month at whose start they expire ("2027-12": they
expire on 1 December 2027, Vietnam time), so expiry takes exactly what is left of a bucket
and spending takes the oldest first. `points` always equals the sum of the buckets. Each
state carries `seq`, the number of ledger entries that made it (the ledger's claim order).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from servicekit.tenancy import of_tenancy
from servicekit.vntime import add_months, day_of, month_of, month_start

Tier = Literal["member", "silver", "gold", "diamond"]
TIERS: tuple[Tier, ...] = ("member", "silver", "gold", "diamond")
EARNED_MONTHS_KEPT = 13  # the tier looks at 12 months; the cap at the current one


class Refused(Exception):
    """A change the rules do not allow; `code` is the API's error code."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def now_ms() -> datetime:
    """Now, at the store's precision (milliseconds), so what is answered equals what is read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Wallet:
    msisdn: str
    seq: int = 0
    points: int = 0
    buckets: dict[str, int] = field(default_factory=dict)  # expiry month -> points
    tier: Tier = "member"
    earned: dict[str, int] = field(default_factory=dict)  # month earned -> points (tier, caps)
    sent: dict[str, int] = field(default_factory=dict)  # day -> points transferred out
    enrolled_at: datetime | None = None  # payments before it earn nothing
    # A number's memberships, one per tenancy: "" the first, then the key of each re-enrolment.
    membership: str = ""
    closed: bool = False  # the number changed hands: this membership is over (see `close`)

    def next_expiry(self) -> tuple[str, int] | None:
        live = sorted((m, p) for m, p in self.buckets.items() if p > 0)
        return live[0] if live else None

    @property
    def member_key(self) -> str:
        """Names this membership (not the number) where a membership owns something: e-codes,
        card requests."""
        return f"{self.msisdn}:{self.membership}" if self.membership else self.msisdn

    def is_open_for(self, owner_since: datetime) -> bool:
        """Whether this is the membership of the tenancy that began at `owner_since` (a
        membership enrolled before it was a previous owner's, closed or not yet)."""
        return not self.closed and of_tenancy(self.enrolled_at, owner_since)

    def qualifying(self, now: datetime) -> int:
        """Points earned in the last 12 months (this month included): what the tier is by."""
        first = add_months(month_of(now), -11)
        return sum(p for m, p in self.earned.items() if m >= first)


@dataclass(frozen=True)
class Change:
    """What one ledger entry does to a wallet."""

    delta: int
    buckets: dict[str, int]  # per expiry month, signed (what was added or taken)
    state: Wallet  # after


def _with_buckets(wallet: Wallet, moves: dict[str, int]) -> dict[str, int]:
    buckets = dict(wallet.buckets)
    for month, points in moves.items():
        buckets[month] = buckets.get(month, 0) + points
    return {m: p for m, p in sorted(buckets.items()) if p != 0}


def _next(wallet: Wallet, moves: dict[str, int], **changes: Any) -> Change:
    delta = sum(moves.values())
    state = replace(
        wallet,
        seq=wallet.seq + 1,
        points=wallet.points + delta,
        buckets=_with_buckets(wallet, moves),
        **changes,
    )
    if state.points < 0 or any(p < 0 for p in state.buckets.values()):  # the invariant, not a rule
        raise AssertionError(f"{wallet.msisdn}: a change would leave negative points")
    return Change(delta=delta, buckets=moves, state=state)


def earn(
    wallet: Wallet, points: int, now: datetime, valid_months: int, counts_for_tier: bool = True
) -> Change:
    """Points earned now; they expire at the start of the month `valid_months` after next."""
    if points <= 0:
        raise ValueError("earn a positive number of points")
    expires = add_months(month_of(now), valid_months + 1)
    earned = dict(wallet.earned)
    if counts_for_tier:
        month = month_of(now)
        earned[month] = earned.get(month, 0) + points
        earned = dict(sorted(earned.items())[-EARNED_MONTHS_KEPT:])
    return _next(wallet, {expires: points}, earned=earned)


def take(wallet: Wallet, points: int) -> dict[str, int]:
    """The buckets `points` come from, soonest to expire first (negative numbers)."""
    if points > wallet.points:
        raise Refused(
            "insufficient_points",
            f"{points} points asked, {wallet.points} available",
            available=wallet.points,
        )
    moves: dict[str, int] = {}
    left = points
    for month, available in sorted(wallet.buckets.items()):
        if left == 0:
            break
        used = min(available, left)
        moves[month] = -used
        left -= used
    return moves


def spend(wallet: Wallet, points: int) -> Change:
    """A redemption: the oldest points go first."""
    if points <= 0:
        raise ValueError("spend a positive number of points")
    return _next(wallet, take(wallet, points))


def send(wallet: Wallet, points: int, now: datetime) -> Change:
    """A transfer out: also counted against the day's transfer limit."""
    moves = take(wallet, points)
    today = day_of(now)
    return _next(wallet, moves, sent={today: wallet.sent.get(today, 0) + points})


def put_back(wallet: Wallet, taken: dict[str, int]) -> Change:
    """Points taken by `taken` (negative per month) returned to the same months: a refused
    redemption, or a transfer's points arriving with the expiry dates they had."""
    return _next(wallet, {m: -p for m, p in taken.items() if p})


def due_months(wallet: Wallet, now: datetime) -> list[str]:
    """The months whose buckets have points and whose start has come, oldest first."""
    return sorted(m for m, p in wallet.buckets.items() if p > 0 and month_start(m) <= now)


def expire_month(wallet: Wallet, month: str, now: datetime) -> Change | None:
    """The bucket of `month`, gone once its month has started. None when nothing is due."""
    left = wallet.buckets.get(month, 0)
    if left <= 0 or month_start(month) > now:
        return None
    return _next(wallet, {month: -left})


def close(wallet: Wallet) -> Change:
    """The number changed hands: the membership ends and its points with it (they are not the
    next owner's); the tier and the counts behind it start again at the next enrolment."""
    return _next(
        wallet,
        {m: -p for m, p in wallet.buckets.items() if p},
        tier="member",
        earned={},
        sent={},
        closed=True,
    )


def reopened(wallet: Wallet, now: datetime, membership: str) -> Wallet:
    """The state a new owner's enrolment is decided on: a fresh membership on the number's
    ledger (its seq runs on), with nothing of the closed one."""
    return replace(
        wallet,
        buckets={},
        points=0,
        tier="member",
        earned={},
        sent={},
        enrolled_at=now,
        membership=membership,
        closed=False,
    )


def set_tier(wallet: Wallet, tier: Tier) -> Change:
    return _next(wallet, {}, tier=tier)


def to_document(wallet: Wallet) -> dict[str, Any]:
    nxt = wallet.next_expiry()
    return {
        "seq": wallet.seq,
        "points": wallet.points,
        "buckets": wallet.buckets,
        "tier": wallet.tier,
        "earned": wallet.earned,
        "sent": wallet.sent,
        "enrolled_at": wallet.enrolled_at,
        "membership": wallet.membership,
        "closed": wallet.closed,
        # The expiry job finds wallets by it (None: nothing to expire).
        "next_expiry": month_start(nxt[0]) if nxt else None,
    }


def from_document(msisdn: str, doc: dict[str, Any]) -> Wallet:
    return Wallet(
        msisdn=msisdn,
        seq=doc.get("seq", 0),
        points=doc.get("points", 0),
        buckets=dict(doc.get("buckets") or {}),
        tier=doc.get("tier", "member"),
        earned=dict(doc.get("earned") or {}),
        sent=dict(doc.get("sent") or {}),
        enrolled_at=doc.get("enrolled_at"),
        membership=doc.get("membership") or "",
        closed=bool(doc.get("closed", False)),
    )
