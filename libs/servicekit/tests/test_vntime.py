"""Vietnam time: what a person here reads, from moments kept in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from servicekit.vntime import (
    add_months,
    day_of,
    minute_of_day,
    month_of,
    month_start,
    next_wall_time,
    wall_date,
    weekday,
)

LATE_EVENING_UTC = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)  # 01:30 on 1 December in Hà Nội


def test_a_moment_late_in_a_utc_day_is_already_the_next_vietnamese_day_and_month() -> None:
    assert (day_of(LATE_EVENING_UTC), month_of(LATE_EVENING_UTC)) == ("2026-12-01", "2026-12")
    assert weekday(LATE_EVENING_UTC) == 1  # Tuesday in Vietnam, Monday in UTC
    assert minute_of_day(LATE_EVENING_UTC) == 90
    assert wall_date(LATE_EVENING_UTC) == "01/12/2026"


def test_a_month_starts_at_vietnamese_midnight() -> None:
    assert month_start("2027-12") == datetime(2027, 11, 30, 17, tzinfo=UTC)


def test_months_move_across_years_both_ways() -> None:
    assert add_months("2026-11", 2) == "2027-01"
    assert add_months("2026-01", -1) == "2025-12"
    assert add_months("2026-12", 13) == "2028-01"


def test_the_next_wall_time_is_later_today_or_tomorrow() -> None:
    seven_am = 7 * 60
    assert next_wall_time(LATE_EVENING_UTC, seven_am) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    eight_am_vn = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert next_wall_time(eight_am_vn, seven_am) == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    assert next_wall_time(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), seven_am) == datetime(
        2026, 12, 2, 0, 0, tzinfo=UTC
    ), "exactly at the time: the next one"


def test_dates_before_1975_follow_the_zone_history() -> None:
    # Saigon kept UTC+8 until 1975: a fixed +7 offset would put this moment on 31 December.
    assert day_of(datetime(1970, 12, 31, 16, 30, tzinfo=UTC)) == "1971-01-01"
