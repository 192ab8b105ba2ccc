"""Payment rules without servers."""

from __future__ import annotations

import pytest

from payment_service.domain.rules import (
    AmountRules,
    ProviderResult,
    event_id,
    judge,
    payment_id_for,
    pin_digest,
    pin_matches,
)

RULES = AmountRules(minimum=10_000, maximum=5_000_000, step=1_000)


@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (10_000, None),
        (5_000_000, None),
        (123_000, None),
        (9_000, "at least 10,000 VND"),
        (5_001_000, "at most 5,000,000 VND"),
        (10_500, "multiple of 1,000 VND"),
    ],
)
def test_amount_rules_say_what_is_wrong(amount: int, problem: str | None) -> None:
    found = RULES.problem(amount)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_the_same_payer_and_key_always_name_the_same_payment() -> None:
    assert payment_id_for("84901234567", "key-1") == payment_id_for("84901234567", "key-1")
    assert payment_id_for("84901234567", "key-1") != payment_id_for("84901234567", "key-2")
    assert payment_id_for("84901234567", "key-1") != payment_id_for("84901234568", "key-1")
    assert payment_id_for("84901234567", "key-1").startswith("PAY")


def test_event_ids_are_stable_per_payment_and_kind() -> None:
    assert event_id("PAY1", "topup") == event_id("PAY1", "topup")
    assert event_id("PAY1", "topup") != event_id("PAY1", "succeeded")


def result(amount: int = 100_000, code: str = "00", status: str = "00") -> ProviderResult:
    return ProviderResult(amount_vnd=amount, response_code=code, transaction_status=status)


def test_a_paid_result_of_the_right_amount_settles_as_succeeded() -> None:
    verdict = judge(100_000, result())
    assert (verdict.action, verdict.status) == ("settle", "succeeded")


def test_a_result_for_another_amount_is_rejected_whatever_it_says() -> None:
    assert judge(100_000, result(amount=99_000)).action == "reject_amount"
    assert judge(100_000, result(amount=101_000, code="51", status="02")).action == "reject_amount"


def test_a_refusal_settles_as_failed_with_the_providers_code() -> None:
    verdict = judge(100_000, result(code="51", status="02"))
    assert (verdict.action, verdict.status, verdict.reason_code) == ("settle", "failed", "51")


def test_success_needs_both_the_response_code_and_the_transaction_status() -> None:
    assert judge(100_000, result(code="00", status="02")).status == "failed"
    assert judge(100_000, result(code="07", status="00")).status == "failed"  # held for fraud review


def test_a_transaction_still_in_progress_waits() -> None:
    assert judge(100_000, result(code="00", status="01")).action == "wait"


def test_pins_are_checked_against_a_keyed_digest_only() -> None:
    digest = pin_digest(b"pepper", "1000000001", "1234567890123")
    assert "1234567890123" not in digest
    assert pin_matches(b"pepper", "1000000001", "1234567890123", digest)
    assert not pin_matches(b"pepper", "1000000001", "1234567890124", digest)
    assert not pin_matches(b"pepper", "1000000002", "1234567890123", digest)  # PIN of another card
    assert not pin_matches(b"other", "1000000001", "1234567890123", digest)
