"""Vietnamese mobile numbers (MSISDN): one canonical form, `84` + 9 digits.

Subscribers type their number as `0901234567`, `+84 90 123 4567` or `84901234567`; every
service stores and keys events by the canonical `84901234567`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

# Mobile prefixes after the country code (2018 renumbering). MobiFone: 70, 76-79, 89, 90, 93.
_MOBILE = re.compile(r"^84(3[2-9]|5[2689]|7[06-9]|8[1-9]|9[0-46-9])\d{7}$")
_MOBIFONE = re.compile(r"^84(70|7[6-9]|89|90|93)\d{7}$")
_SEPARATORS = re.compile(r"[\s.\-()]")


class InvalidMsisdn(ValueError):
    """Raised with a message fit to show the user."""


def normalize_msisdn(raw: str) -> str:
    """`0901 234 567` / `+84901234567` / `84901234567` -> `84901234567`, else InvalidMsisdn."""
    if not isinstance(raw, str):
        raise InvalidMsisdn("phone number must be a string")
    digits = _SEPARATORS.sub("", raw.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.startswith("0"):
        digits = "84" + digits[1:]
    if not digits.isdigit() or not _MOBILE.match(digits):
        raise InvalidMsisdn(
            f"{raw!r} is not a Vietnamese mobile number (expected 0xxxxxxxxx, 84xxxxxxxxx or +84xxxxxxxxx)"
        )
    return digits


def is_mobifone(msisdn: str) -> bool:
    """Whether the number is in a range allocated to MobiFone: a hint only. Numbers have
    been portable since 2019, so only the subscriber directory (the account service) says
    whether a number is a MobiFone subscription."""
    return bool(_MOBIFONE.match(msisdn))


# Canonical form, validated as-is (event payloads are produced canonical).
Msisdn = Annotated[str, StringConstraints(pattern=r"^84\d{9}$")]
# Accepts what a user types and normalises it (API request bodies).
MsisdnInput = Annotated[str, BeforeValidator(normalize_msisdn)]
