"""Quiet hours, in Vietnam time (servicekit.vntime)."""

from __future__ import annotations

from datetime import datetime

from servicekit.vntime import minute_of_day, next_wall_time


def parse_hhmm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def in_quiet_hours(now: datetime, start: int, end: int) -> bool:
    """`start`/`end` are minutes after local midnight; a window may wrap midnight (22:00-07:00)."""
    minute = minute_of_day(now)
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def quiet_ends(now: datetime, end: int) -> datetime:
    """The next moment (UTC, on the minute) the window ending at local `end` is over."""
    return next_wall_time(now, end)
