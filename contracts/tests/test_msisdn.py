from __future__ import annotations

import pytest

from mobi_contracts.msisdn import InvalidMsisdn, is_mobifone, normalize_msisdn


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("0901234567", "84901234567"),
        ("84901234567", "84901234567"),
        ("+84901234567", "84901234567"),
        ("+84 90 123 4567", "84901234567"),
        ("090-123-4567", "84901234567"),
        (" 0931234567 ", "84931234567"),
        ("0362345678", "84362345678"),
    ],
)
def test_the_ways_people_type_a_number_become_one_form(typed: str, canonical: str) -> None:
    assert normalize_msisdn(typed) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "12345",
        "0201234567",
        "090123456",
        "09012345678",
        "+1 202 555 0100",
        "8490123456a",
        "0241234567",
        "abc",
    ],
)
def test_anything_that_is_not_a_vietnamese_mobile_number_is_refused_with_a_message(bad: str) -> None:
    with pytest.raises(InvalidMsisdn, match="Vietnamese mobile number"):
        normalize_msisdn(bad)


def test_mobifone_prefixes() -> None:
    assert is_mobifone("84901234567") and is_mobifone("84702345678") and is_mobifone("84891234567")
    assert not is_mobifone("84981234567")  # Viettel
    assert not is_mobifone("84911234567")  # Vinaphone
