from __future__ import annotations

from datetime import UTC, datetime

import pytest

from account_service.domain.otp import code_digest, new_code, sms_text
from account_service.domain.paging import BadCursor, Cursor, older_than


def test_codes_have_the_policy_length_and_vary() -> None:
    codes = {new_code(6) for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150


def test_the_stored_digest_depends_on_pepper_number_and_code() -> None:
    d = code_digest(b"pepper", "84901234567", "123456")
    assert d != code_digest(b"other", "84901234567", "123456")
    assert d != code_digest(b"pepper", "84901234568", "123456")
    assert d != code_digest(b"pepper", "84901234567", "123457")
    assert "123456" not in d


def test_the_sms_says_the_code_and_how_long_it_lasts() -> None:
    assert "654321" in sms_text("654321", 300) and "5 phut" in sms_text("654321", 300)


def test_a_cursor_round_trips_and_filters_strictly_older_items() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    cursor = Cursor.decode(Cursor(at, "x9").encode())
    assert cursor == Cursor(at, "x9")
    assert older_than(cursor) == {"$or": [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": "x9"}}]}


@pytest.mark.parametrize("token", ["", "%%%", "bm90IGpzb24", "eyJhdCI6IDF9"])
def test_a_cursor_the_api_did_not_issue_is_refused(token: str) -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(token)
