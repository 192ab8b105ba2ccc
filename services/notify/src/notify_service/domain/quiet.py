"""Quiet hours, in Vietnam time (UTC+7, no daylight saving)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7), "ICT")


def parse_hhmm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def in_quiet_hours(now: datetime, start: int, end: int) -> bool:
    """`start`/`end` are minutes after local midnight; a window may wrap midnight (22:00-07:00)."""
    local = now.astimezone(VIETNAM)
    minute = local.hour * 60 + local.minute
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def quiet_ends(now: datetime, end: int) -> datetime:
    """The next moment (UTC, on the minute) the window ending at local `end` is over."""
    local = now.astimezone(VIETNAM).replace(second=0, microsecond=0)
    candidate = local.replace(hour=end // 60, minute=end % 60)
    if candidate <= now.astimezone(VIETNAM):
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)
