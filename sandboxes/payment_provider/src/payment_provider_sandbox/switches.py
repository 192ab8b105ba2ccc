"""Test switches: make the next payments' notifications misbehave in a chosen way.

A switch names a txn_ref (applies to that payment) or none (applies to the next `times`
payments, oldest switch first). Exactly one switch applies to a payment; a txn_ref switch wins.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeliveryPlan(BaseModel):
    """How the notifications of one payment are delivered. The default is the honest provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: bool = Field(False, description="never notify; only the return redirect happens")
    delay_s: float = Field(0.0, ge=0, le=600, description="wait before the first notification")
    copies: int = Field(1, ge=1, le=50, description="deliver the same signed IPN this many times")
    concurrent: bool = Field(False, description="send the copies at the same moment")
    tamper: Literal["signature", "amount"] | None = Field(
        None, description="first send a forged IPN: wrong hash, or correctly signed wrong amount"
    )
    stale_age_s: float | None = Field(
        None, gt=0, description="first send a correctly signed IPN whose vnp_NotifyTime is this old"
    )
    then_genuine: bool = Field(True, description="after a tampered/stale IPN, deliver the genuine one")
    query_in_progress: bool = Field(
        False,
        description="querydr reports the transaction as still in progress at the bank (01) until its "
        "notification goes out (with delay_s: a late confirmation); with drop: for good",
    )
    out_of_order: Literal["failure_after_success", "swap_with_next"] | None = Field(
        None,
        description="failure_after_success: after the success IPN, send a signed failure for the same "
        "order; swap_with_next: hold this IPN until the next payment's IPN has been delivered",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        if self.drop and self._differs_from_default(exclude={"drop", "query_in_progress"}):
            raise ValueError("drop cannot be combined with other switches")
        if self.out_of_order == "swap_with_next" and self._differs_from_default(exclude={"out_of_order"}):
            raise ValueError("swap_with_next cannot be combined with other switches")
        if self.concurrent and self.copies < 2:
            raise ValueError("concurrent needs copies >= 2")
        if not self.then_genuine and not self.has_injection:
            raise ValueError("then_genuine=false only makes sense with tamper or stale_age_s")
        return self

    def _differs_from_default(self, exclude: set[str]) -> bool:
        fields = set(DeliveryPlan.model_fields) - exclude
        return self.model_dump(include=fields) != DeliveryPlan().model_dump(include=fields)

    @property
    def has_injection(self) -> bool:
        return self.tamper is not None or self.stale_age_s is not None


class SwitchSpec(DeliveryPlan):
    txn_ref: str | None = Field(None, description="only this payment; otherwise the next ones")
    times: int | None = Field(1, ge=1, description="how many payments it applies to; null = until removed")


class Switch(BaseModel):
    id: str
    spec: SwitchSpec
    created_at: datetime
    remaining: int | None
    applied_to: list[str] = Field(default_factory=list)

    def plan(self) -> DeliveryPlan:
        return DeliveryPlan(**self.spec.model_dump(exclude={"txn_ref", "times"}))

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(),
            "created_at": self.created_at.isoformat(),
            "remaining": self.remaining,
            "applied_to": self.applied_to,
        }


class SwitchBoard:
    def __init__(self) -> None:
        self._switches: list[Switch] = []

    def add(self, spec: SwitchSpec, now: datetime) -> Switch:
        switch = Switch(id=secrets.token_hex(6), spec=spec, created_at=now, remaining=spec.times)
        self._switches.append(switch)
        return switch

    def all(self) -> list[Switch]:
        return list(self._switches)

    def remove(self, switch_id: str) -> bool:
        before = len(self._switches)
        self._switches = [s for s in self._switches if s.id != switch_id]
        return len(self._switches) != before

    def clear(self) -> None:
        self._switches.clear()

    def take(self, txn_ref: str) -> DeliveryPlan:
        """The plan for this payment, consuming one use of the switch that applies."""
        switch = self._find(txn_ref)
        if switch is None:
            return DeliveryPlan()
        switch.applied_to.append(txn_ref)
        if switch.remaining is not None:
            switch.remaining -= 1
            if switch.remaining == 0:
                self._switches.remove(switch)
        return switch.plan()

    def _find(self, txn_ref: str) -> Switch | None:
        for switch in self._switches:
            if switch.spec.txn_ref == txn_ref:
                return switch
        return next((s for s in self._switches if s.spec.txn_ref is None), None)
