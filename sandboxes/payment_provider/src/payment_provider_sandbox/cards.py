"""Test cards and card-form checks. The full card number never leaves this module's functions:
callers get a `CardCheck` holding only the masked number and what the card does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from vnpay import BankCode, ResponseCode


class Outcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_CARD = "expired_card"


# VNPay's response-code table has no "expired card" entry; its gateway reports it as 99.
OUTCOME_CODES: dict[Outcome, str] = {
    Outcome.APPROVED: ResponseCode.SUCCESS,
    Outcome.DECLINED: ResponseCode.CARD_LOCKED,
    Outcome.INSUFFICIENT_FUNDS: ResponseCode.INSUFFICIENT_FUNDS,
    Outcome.EXPIRED_CARD: ResponseCode.OTHER_ERROR,
}

OTP_CODE = "123456"


@dataclass(frozen=True)
class TestCard:
    __test__ = False  # not a pytest test class, despite the name

    number: str
    scheme: str  # VISA, MASTERCARD, JCB, NAPAS
    bank_code: str  # vnp_BankCode reported on the result
    outcome: Outcome
    challenge: bool  # 3-D Secure / OTP step before the outcome
    label: str

    @property
    def domestic(self) -> bool:
        return self.scheme == "NAPAS"

    @property
    def card_type(self) -> str:
        """vnp_CardType: ATM for domestic cards, CREDIT for international ones."""
        return "ATM" if self.domestic else "CREDIT"


TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4111111111111111", "VISA", "VISA", Outcome.APPROVED, False, "Visa, approved"),
    TestCard("5555555555554444", "MASTERCARD", "MASTERCARD", Outcome.APPROVED, False, "Mastercard, approved"),
    TestCard("4000000000003220", "VISA", "VISA", Outcome.APPROVED, True, "Visa, 3-D Secure challenge"),
    TestCard("4000000000000002", "VISA", "VISA", Outcome.DECLINED, False, "Visa, declined by issuer"),
    TestCard(
        "4000000000009995", "VISA", "VISA", Outcome.INSUFFICIENT_FUNDS, False, "Visa, insufficient funds"
    ),
    TestCard("4000000000000069", "VISA", "VISA", Outcome.EXPIRED_CARD, False, "Visa, expired card"),
    # Domestic cards always go through the bank's OTP step, as on VNPay's own sandbox (NCB bank).
    TestCard("9704198526191432198", "NAPAS", "NCB", Outcome.APPROVED, True, "NCB ATM, approved"),
    TestCard("9704195798459170488", "NAPAS", "NCB", Outcome.INSUFFICIENT_FUNDS, True, "NCB ATM, no funds"),
    TestCard("9704193370791314", "NAPAS", "NCB", Outcome.DECLINED, True, "NCB ATM, card locked"),
    TestCard("9704194841945513", "NAPAS", "NCB", Outcome.EXPIRED_CARD, True, "NCB ATM, expired card"),
)
_BY_NUMBER = {card.number: card for card in TEST_CARDS}
# vnp_BankCode values that ask for a domestic ATM card (NCB: the sandbox bank, as on VNPay's sandbox).
DOMESTIC_METHODS = frozenset({BankCode.DOMESTIC_CARD, "NCB"})


class CardRejected(ValueError):
    """The form cannot be processed; the customer may correct it and submit again."""


@dataclass(frozen=True)
class CardCheck:
    card: TestCard
    masked: str


def mask(number: str) -> str:
    """First 6 and last 4 digits, the rest as '*' (what PCI DSS allows to be displayed)."""
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def check_card(form: Mapping[str, str], method: str | None, today: date) -> CardCheck:
    """Validate the submitted card form against the payment method. Raises CardRejected."""
    number = re.sub(r"[\s-]", "", form.get("card_number", ""))
    if not re.fullmatch(r"\d{12,19}", number):
        raise CardRejected("Card number must be 12 to 19 digits.")
    card = _BY_NUMBER.get(number)
    if card is None:
        raise CardRejected("Unknown card: this sandbox accepts only the test cards listed below.")
    _check_method(card, method)
    _check_holder(form.get("card_holder", ""))
    if card.domestic:
        _check_issue_date(form.get("card_issue_date", ""), today)
    else:
        _check_expiry(form.get("card_expiry", ""), today)
        if not re.fullmatch(r"\d{3}", form.get("card_cvv", "")):
            raise CardRejected("CVV must be 3 digits.")
    return CardCheck(card=card, masked=mask(number))


def _check_method(card: TestCard, method: str | None) -> None:
    if method == BankCode.INTERNATIONAL_CARD and card.domestic:
        raise CardRejected("This payment accepts international cards only.")
    if method in DOMESTIC_METHODS and not card.domestic:
        raise CardRejected("This payment accepts domestic ATM cards only.")


def _check_holder(holder: str) -> None:
    if not re.fullmatch(r"[A-Za-z][A-Za-z .'-]{1,49}", holder.strip()):
        raise CardRejected("Card holder name is required (letters, without accents).")


def _month_year(text: str, field: str) -> tuple[int, int]:
    match = re.fullmatch(r"(0[1-9]|1[0-2])/(\d{2})", text.strip())
    if not match:
        raise CardRejected(f"{field} must be MM/YY.")
    return int(match.group(1)), 2000 + int(match.group(2))


def _check_expiry(text: str, today: date) -> None:
    month, year = _month_year(text, "Expiry date")
    if (year, month) < (today.year, today.month):
        raise CardRejected("The expiry date is in the past.")


def _check_issue_date(text: str, today: date) -> None:
    month, year = _month_year(text, "Issue date")
    if (year, month) > (today.year, today.month):
        raise CardRejected("The issue date is in the future.")
