from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mobi_contracts.events.notify import Audience
from notify_service.domain.audience import BUCKETS, Attributes, bucket_of, matches, units_for
from notify_service.domain.quiet import in_quiet_hours, parse_hhmm, quiet_ends

PREPAID_GOLD_MAX = Attributes(billing="prepaid", tier="gold", vas=frozenset({"MAX90"}))


def test_everyone_matches_anyone_even_unknown() -> None:
    assert matches(Audience(everyone=True), "84901234567", Attributes())


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ({"billing": "prepaid"}, True),
        ({"billing": "postpaid"}, False),
        ({"tiers": ["silver", "gold"]}, True),
        ({"tiers": ["diamond"]}, False),
        ({"has_vas": "MAX90"}, True),
        ({"lacks_vas": "MAX90"}, False),
        ({"lacks_vas": "FUN"}, True),
        ({"prefixes": ["090"]}, True),
        ({"prefixes": ["8493"]}, False),
        ({"msisdns": ["84901234567"]}, True),
        ({"msisdns": ["84931234567"]}, False),
        ({"billing": "prepaid", "prefixes": ["8493"]}, False),  # criteria combine with AND
    ],
)
def test_each_criterion_is_applied(audience: dict[str, object], expected: bool) -> None:
    assert matches(Audience.model_validate(audience), "84901234567", PREPAID_GOLD_MAX) is expected


def test_unknown_attributes_are_outside_audiences_that_ask_for_them() -> None:
    unknown = Attributes()
    assert not matches(Audience(billing="prepaid"), "84901234567", unknown)
    assert not matches(Audience(tiers=["gold"]), "84901234567", unknown)
    assert matches(Audience(lacks_vas="MAX90"), "84901234567", unknown)


@pytest.mark.parametrize(
    ("audience", "problem"),
    [
        ({}, "names nobody"),
        ({"everyone": True, "billing": "prepaid"}, "cannot be combined"),
        ({"prefixes": ["12x"]}, "not the start of a number"),
        ({"msisdns": ["0901234567"]}, "pattern"),
    ],
)
def test_audiences_that_make_no_sense_are_refused(audience: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Audience.model_validate(audience)


def test_an_explicit_list_visits_only_its_buckets() -> None:
    numbers = ["84901234567", "84931234567"]
    units = units_for(Audience(msisdns=numbers))
    assert units == sorted({f"b{bucket_of(n):03d}" for n in numbers})
    assert len(units_for(Audience(everyone=True))) == BUCKETS


@pytest.mark.parametrize(
    ("utc", "inside"),
    [
        ("2026-11-26T15:30:00", True),  # 22:30 in Vietnam
        ("2026-11-26T23:59:00", True),  # 06:59
        ("2026-11-27T00:00:00", False),  # 07:00
        ("2026-11-26T14:59:00", False),  # 21:59
    ],
)
def test_quiet_hours_wrap_midnight_in_vietnam_time(utc: str, inside: bool) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert in_quiet_hours(now, parse_hhmm("22:00"), parse_hhmm("07:00")) is inside


def test_a_deferred_push_is_due_when_the_window_ends() -> None:
    now = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)  # 22:30 ICT
    assert quiet_ends(now, parse_hhmm("07:00")) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    early = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 03:00 ICT, same night
    assert quiet_ends(early, parse_hhmm("07:00")) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
