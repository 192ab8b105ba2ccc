"""Opening hours (weekdays, midnight), diacritics folding, import rows and feedback text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from stores_service.domain.catalogue import CatalogueInvalid, parse_csv, parse_json, to_csv
from stores_service.domain.feedback import can_move, new_ticket, sanitise, ticket_for_key
from stores_service.domain.hours import is_open, parse_interval, parse_week, today
from stores_service.domain.text import fold, matches
from stores_service.hotlines import load_hotlines
from stores_service.seed import demo_catalogue

VN = timezone(timedelta(hours=7))


def at(day: int, hhmm: str) -> datetime:
    """Vietnam time on a day of the week of 2026-11-23 (a Monday, day 0)."""
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 11, 23 + day, h, m, tzinfo=VN)


SHOP = parse_week({d: ["08:00-12:00", "13:30-21:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
NIGHT = parse_week({"fri": ["22:00-02:00"], "sat": ["22:00-02:00"]})


def test_open_within_an_interval_and_closed_at_its_end_and_at_lunch() -> None:
    assert is_open(SHOP, at(0, "08:00"))
    assert is_open(SHOP, at(0, "20:59"))
    assert not is_open(SHOP, at(0, "21:00"))
    assert not is_open(SHOP, at(0, "12:30"))
    assert not is_open(SHOP, at(0, "07:59"))


def test_closed_on_a_weekday_with_no_hours() -> None:
    assert is_open(SHOP, at(5, "10:00"))  # Saturday
    assert not is_open(SHOP, at(6, "10:00"))  # Sunday


def test_an_interval_past_midnight_is_open_into_the_next_day_only_after_its_start_day() -> None:
    assert is_open(NIGHT, at(4, "23:30"))  # Friday night
    assert is_open(NIGHT, at(5, "01:59"))  # Saturday early: Friday's interval
    assert not is_open(NIGHT, at(5, "02:00"))
    assert is_open(NIGHT, at(6, "01:00"))  # Sunday early: Saturday's interval
    assert not is_open(NIGHT, at(4, "01:00"))  # Friday early: Thursday had none
    assert not is_open(NIGHT, at(0, "01:00"))  # Monday early: Sunday had none


def test_sunday_night_runs_into_monday() -> None:
    week = parse_week({"sun": ["20:00-01:00"]})
    assert is_open(week, at(0, "00:30"))
    assert not is_open(week, at(0, "01:00"))
    assert is_open(week, at(6, "20:00"))


def test_all_day_is_always_open_and_utc_is_converted_to_vietnam_time() -> None:
    week = parse_week({"mon": ["00:00-24:00"]})
    assert is_open(week, at(0, "00:00")) and is_open(week, at(0, "23:59"))
    assert not is_open(week, at(1, "00:00"))
    # 2026-11-23 14:30 UTC is 21:30 in Vietnam: the shop has closed.
    assert not is_open(SHOP, datetime(2026, 11, 23, 14, 30, tzinfo=UTC))
    assert is_open(SHOP, datetime(2026, 11, 23, 13, 30, tzinfo=UTC))
    assert today(SHOP, at(0, "09:00")) == ["08:00-12:00", "13:30-21:00"]


@pytest.mark.parametrize(
    "bad", ["8:00-12:00", "08:00-25:00", "24:00-02:00", "08:00-08:00", "08:00", "ab:cd-12:00"]
)
def test_malformed_or_empty_intervals_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        parse_interval(bad)


def test_unknown_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="weekday"):
        parse_week({"monday": ["08:00-12:00"]})


def test_folding_ignores_diacritics_case_and_punctuation() -> None:
    assert fold("Hà Nội") == "ha noi"
    assert fold("ĐỐNG ĐA, Hà  Nội!") == "dong da ha noi"
    assert fold("Thừa Thiên Huế") == "thua thien hue"
    assert fold("Bà Rịa - Vũng Tàu") == "ba ria vung tau"
    # Decomposed input (NFD, as some keyboards send) folds the same.
    assert fold("Ha\u0300 No\u0323\u0302i") == "ha noi"


def test_every_query_word_must_start_a_word() -> None:
    haystack = " " + fold("Cửa hàng MobiFone Cầu Giấy, 12 Trần Phú, Hà Nội")
    assert matches(haystack, fold("ha noi"))
    assert matches(haystack, fold("cau gi"))
    assert matches(haystack, fold("TRẦN phu"))
    assert not matches(haystack, fold("anoi"))
    assert not matches(haystack, fold("ha noi da nang"))
    assert not matches(haystack, "")


def _row(**changes: object) -> dict[str, object]:
    row = {
        "id": "HNI-1",
        "name": "Cửa hàng MobiFone Hoàn Kiếm",
        "type": "mobifone_store",
        "address": "1 Lê Lợi, Hoàn Kiếm, Hà Nội",
        "district": "Hoàn Kiếm",
        "province": "Hà Nội",
        "lat": 21.03,
        "lon": 105.85,
        "services": ["sim_swap", "esim"],
        "hours": {"mon": ["08:00-21:00"]},
    }
    return {**row, **changes}


def test_a_json_catalogue_with_bad_rows_names_each_row_and_problem() -> None:
    rows = [
        _row(),
        _row(id="HNI-2", lat=95),
        _row(id="HNI-3", lat=13.75, lon=100.5),
        _row(),
        _row(id="HNI-5", hours={"mon": ["9-5"]}),
    ]
    with pytest.raises(CatalogueInvalid) as caught:
        parse_json(orjson.dumps(rows))
    errors = caught.value.errors
    assert errors[0].startswith("row 2: lat")
    assert errors[1].startswith("row 3:") and "not in Vietnam" in errors[1]
    assert errors[2] == "row 4: id HNI-1 repeats row 1"
    assert errors[3].startswith("row 5: hours")
    assert len(errors) == 4


def test_an_empty_or_non_list_catalogue_is_refused() -> None:
    for content in (b"[]", b'{"stores": 3}', b"not json"):
        with pytest.raises(CatalogueInvalid):
            parse_json(content)


def test_the_demo_catalogue_round_trips_through_csv() -> None:
    rows = demo_catalogue()[:200]
    assert parse_csv(to_csv(rows)) == rows


def test_a_csv_row_with_a_bad_service_names_its_row_and_line() -> None:
    text = to_csv(demo_catalogue()[:3]).decode().replace("topup", "free_beer", 1)
    with pytest.raises(CatalogueInvalid) as caught:
        parse_csv(text.encode())
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith(
        ("row 1 (line 2): services", "row 2 (line 3): services", "row 3 (line 4): services")
    )


def test_a_csv_without_the_required_columns_is_refused() -> None:
    with pytest.raises(CatalogueInvalid, match="lacks column"):
        parse_csv(b"id,name\nX,Y\n")


def test_the_demo_catalogue_is_a_few_thousand_unique_stores_in_vietnam_with_diacritics() -> None:
    rows = demo_catalogue()
    assert 2500 <= len(rows) <= 3500
    assert len({r.id for r in rows}) == len(rows)
    assert len({r.province for r in rows}) >= 30
    assert any("Hà Nội" in r.address for r in rows)
    assert demo_catalogue()[:50] == rows[:50]  # deterministic


def test_sanitising_removes_control_and_invisible_characters_and_keeps_vietnamese() -> None:
    raw = "Sóng\x00 yếu\x1b[31m ở \u202eCầu Giấy\r\n\r\n\r\n\r\nrất\t\tchậm\u200b  "
    assert sanitise(raw) == "Sóng yếu[31m ở Cầu Giấy\n\nrất chậm"
    assert sanitise("a\nb", multiline=False) == "a b"
    assert sanitise("<script>alert(1)</script>") == "<script>alert(1)</script>"  # text, not HTML


def test_ticket_numbers_are_short_unambiguous_and_stable_per_idempotency_key() -> None:
    ticket = new_ticket()
    assert len(ticket) == 11 and ticket.startswith("GY-")
    assert not set(ticket[3:]) & set("ILOU")
    assert ticket_for_key("84901234567", "key-12345678") == ticket_for_key("84901234567", "key-12345678")
    assert ticket_for_key("84901234567", "key-12345678") != ticket_for_key("84931234567", "key-12345678")


def test_a_closed_ticket_cannot_change_and_an_answered_one_may_be_reopened() -> None:
    assert can_move("received", "answered")
    assert can_move("answered", "in_progress")
    assert not can_move("closed", "answered")
    assert not can_move("in_progress", "received")


def test_the_packaged_hotlines_load_with_tel_links_and_hours(tmp_path: object) -> None:
    lines = load_hotlines()
    purposes = {h.purpose for h in lines}
    assert {"customer_care", "complaints", "loyalty", "roaming"} <= purposes
    view = lines[0].view(at(0, "03:00"))
    assert view["tel"] == f"tel:{lines[0].number}"
    assert view["always_open"] is True and view["open_now"] is True


def test_a_hotlines_file_overrides_the_packaged_one_and_a_bad_one_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "h.json"
    good.write_bytes(
        orjson.dumps(
            {
                "hotlines": [
                    {
                        "id": "x",
                        "purpose": "other",
                        "name": "X",
                        "name_en": "X",
                        "number": "123",
                        "free": True,
                        "hours": {"mon": ["08:00-17:00"]},
                    }
                ]
            }
        )
    )
    assert [h.id for h in load_hotlines(good)] == ["x"]
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"hotlines": [{"id": "x", "number": "abc"}]}))
    with pytest.raises(ValueError, match="validation"):
        load_hotlines(bad)


def test_every_seed_district_lies_in_vietnam_near_its_provinces_capital() -> None:
    from stores_service.domain.geo import distance_km, in_vietnam_area
    from stores_service.seed import PROVINCES

    for province, _, _, _, _, districts in PROVINCES:
        capital = districts[0]
        for name, lat, lon in districts:
            assert in_vietnam_area(lat, lon), (province, name)
            assert distance_km(capital[1], capital[2], lat, lon) < 150, (province, name)  # Phú Quốc: 124 km


def test_settings_refuse_limits_that_contradict_each_other() -> None:
    from stores_service.settings import StoresSettings

    assert StoresSettings().feedback_per_hour == 5
    for bad in ({"feedback_per_hour": 30, "feedback_per_day": 20}, {"feedback_max_chars": 5000},
                {"nearest_default_radius_km": 2000}):  # fmt: skip
        with pytest.raises(ValueError, match="need"):
            StoresSettings(**bad)  # type: ignore[arg-type]
