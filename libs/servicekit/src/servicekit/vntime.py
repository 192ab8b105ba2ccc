"""Vietnam time: the one clock a person here reads (months, days, quiet hours, opening hours,
expiry dates, every date shown to a subscriber).

Moments are stored and compared in UTC; what a person counts in (a month's points, a day's
transfers, "open now", 22:00-07:00 quiet hours, "expires on 1 December") is Vietnam civil time,
the IANA zone Asia/Ho_Chi_Minh (UTC+7 today, no daylight saving; the zone database knows the
past offsets, so dates from before 1975 come out right too).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
MINUTES_PER_DAY = 24 * 60


def local(at: datetime) -> datetime:
    """`at` (aware) on the Vietnamese wall clock."""
    return at.astimezone(VIETNAM)


def month_of(at: datetime) -> str:
    """The Vietnamese month `at` falls in, "YYYY-MM"."""
    return local(at).strftime("%Y-%m")


def day_of(at: datetime) -> str:
    """The Vietnamese day `at` falls in, "YYYY-MM-DD"."""
    return local(at).strftime("%Y-%m-%d")


def add_months(month: str, months: int) -> str:
    """ "YYYY-MM" moved by `months` (negative: back)."""
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + (mon - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start(month: str) -> datetime:
    """The instant a Vietnamese month ("YYYY-MM") begins: its first midnight, as UTC."""
    year, mon = (int(p) for p in month.split("-"))
    return datetime(year, mon, 1, tzinfo=VIETNAM).astimezone(UTC)


def minute_of_day(at: datetime) -> int:
    """Minutes since Vietnamese midnight (0-1439)."""
    wall = local(at)
    return wall.hour * 60 + wall.minute


def weekday(at: datetime) -> int:
    """The Vietnamese weekday of `at`, Monday 0."""
    return local(at).weekday()


def next_wall_time(now: datetime, minute: int) -> datetime:
    """The next moment after `now` (UTC, on the minute) the Vietnamese clock shows `minute`
    minutes past midnight."""
    wall = local(now)
    candidate = wall.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0)
    if candidate <= wall:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def wall_date(at: datetime, pattern: str = "%d/%m/%Y") -> str:
    """A date as a person here reads it (Vietnamese day, month, year by default)."""
    return local(at).strftime(pattern)
