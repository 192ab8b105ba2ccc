"""Opening hours per weekday in Vietnam time (servicekit.vntime), intervals that may cross midnight.

A day's hours are intervals "HH:MM-HH:MM". An interval whose end is not after its start
runs past midnight into the next day ("22:00-02:00"); "00:00-24:00" is the whole day.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime

from servicekit.vntime import minute_of_day, weekday

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 24 * 60

Interval = tuple[int, int]  # minutes from the day's midnight; end <= start: ends next day
WeekHours = tuple[tuple[Interval, ...], ...]  # seven days, Monday first


def parse_interval(text: str) -> Interval:
    try:
        start_text, end_text = text.strip().split("-")
        start, end = _minutes(start_text), _minutes(end_text)
    except ValueError:
        raise ValueError(f"{text!r} is not an interval HH:MM-HH:MM") from None
    if start == DAY:
        raise ValueError(f"{text!r}: 24:00 can only end an interval")
    if start == end % DAY and not (start == 0 and end == DAY):
        raise ValueError(f"{text!r}: an interval must not be empty (use 00:00-24:00 for all day)")
    return start, end


def _minutes(text: str) -> int:
    hh, mm = text.strip().split(":")
    if len(hh) != 2 or len(mm) != 2:
        raise ValueError(text)
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(text)
    return h * 60 + m


def parse_week(days: Mapping[str, Sequence[str]]) -> WeekHours:
    """{"mon": ["08:00-12:00", "13:30-21:00"], ..., "sun": []} (absent day: closed)."""
    unknown = set(days) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
    return _parse_days(tuple(tuple(days.get(day, ())) for day in WEEKDAYS))


@functools.lru_cache(maxsize=1024)
def _parse_days(days: tuple[tuple[str, ...], ...]) -> WeekHours:
    # Most stores share a handful of timetables: each is parsed once.
    return tuple(tuple(parse_interval(i) for i in day) for day in days)


def is_open(week: WeekHours, at: datetime) -> bool:
    day, minute = weekday(at), minute_of_day(at)
    for start, end in week[day]:
        if start < end and start <= minute < end:
            return True
        if end <= start and minute >= start:  # started today, runs past midnight
            return True
    # Yesterday's intervals that run past midnight into today.
    return any(end <= start and minute < end for start, end in week[(day - 1) % 7])


def format_interval(interval: Interval) -> str:
    start, end = interval
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def today(week: WeekHours, at: datetime) -> list[str]:
    return [format_interval(i) for i in week[weekday(at)]]
