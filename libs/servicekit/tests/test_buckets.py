"""Time buckets: the hours and minutes that cover a window."""

from __future__ import annotations

from datetime import UTC, datetime

from servicekit.buckets import buckets_between


def test_buckets_cover_a_window_with_whole_hours_and_the_minutes_around_them() -> None:
    hours, minutes = buckets_between(
        datetime(2026, 11, 26, 14, 37, 20, tzinfo=UTC), datetime(2026, 11, 26, 17, 5, 1, tzinfo=UTC)
    )
    assert hours == ["2026112615", "2026112616"]
    before = [f"2026112614{m:02d}" for m in range(37, 60)]
    assert minutes == [*before, *(f"2026112617{m:02d}" for m in range(6))]


def test_a_window_inside_one_minute_is_that_minute() -> None:
    start = datetime(2026, 11, 26, 23, 59, 1, tzinfo=UTC)
    assert buckets_between(start, start.replace(second=50)) == ([], ["202611262359"])
