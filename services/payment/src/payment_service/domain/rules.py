"""Amount rules, deterministic ids, and what a provider's notification means for a payment."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Literal

Status = Literal["pending", "succeeded", "failed", "expired"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "expired"})
_NAMESPACE = uuid.UUID("2b7c9a4e-51d3-4e8f-8d0b-7f3a6c1e9d25")


@dataclass(frozen=True)
class AmountRules:
    minimum: int
    maximum: int
    step: int

    def problem(self, amount: int) -> str | None:
        """Why `amount` is not allowed, in words for the user; None when it is."""
        if amount < self.minimum:
            return f"amount must be at least {self.minimum:,} VND"
        if amount > self.maximum:
            return f"amount must be at most {self.maximum:,} VND"
        if amount % self.step:
            return f"amount must be a multiple of {self.step:,} VND"
        return None


def payment_id_for(payer: str, idempotency_key: str) -> str:
    """The same payer and key always name the same payment: a retry cannot create another."""
    return "PAY" + hashlib.sha256(f"{payer}:{idempotency_key}".encode()).hexdigest()[:24].upper()


def event_id(subject_id: str, kind: str) -> uuid.UUID:
    """Stable event ids: republishing a payment's event reuses its id (consumers dedupe)."""
    return uuid.uuid5(_NAMESPACE, f"{subject_id}:{kind}")


@dataclass(frozen=True)
class ProviderResult:
    """What the provider says about a transaction (from a notification or a status query)."""

    amount_vnd: int
    response_code: str
    transaction_status: str
    transaction_no: str | None = None
    bank_code: str | None = None
    card_type: str | None = None


@dataclass(frozen=True)
class Verdict:
    action: Literal["settle", "reject_amount", "wait"]
    status: Status | None = None
    reason_code: str = ""


def judge(amount_vnd: int, result: ProviderResult) -> Verdict:
    """How a provider result settles a pending payment of `amount_vnd`."""
    if result.amount_vnd != amount_vnd:
        return Verdict("reject_amount")
    if result.transaction_status == "01":  # still in progress at the provider
        return Verdict("wait")
    if result.response_code == "00" and result.transaction_status == "00":
        return Verdict("settle", "succeeded")
    return Verdict("settle", "failed", result.response_code)


# -- scratch cards ------------------------------------------------------------------------------


def pin_digest(pepper: bytes, serial: str, pin: str) -> str:
    return hmac.new(pepper, f"{serial}:{pin}".encode(), hashlib.sha256).hexdigest()


def pin_matches(pepper: bytes, serial: str, pin: str, stored_digest: str) -> bool:
    return hmac.compare_digest(pin_digest(pepper, serial, pin), stored_digest)
