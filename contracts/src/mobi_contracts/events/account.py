"""Events produced by the account service (topic `account.events.v1`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..envelope import Envelope, EventData

ChangeReason = Literal["topup", "usage", "vas_charge", "bill_payment", "adjustment", "loyalty_redemption"]


class BalanceChangedData(EventData):
    """One ledger entry: `account` changed by `delta` because of `cause_event_id`."""

    entry_id: str = Field(min_length=1, max_length=160)
    account: str = Field(description="main | promo:<id> | data:<id>", max_length=64)
    unit: Literal["vnd", "kb"]
    delta: int
    balance_after: int = Field(ge=0)
    reason: ChangeReason
    cause_event_id: str = Field(max_length=64)
    cause_event_type: str = Field(max_length=64)
    description: str = Field(default="", max_length=200)


class BalanceChanged(Envelope[BalanceChangedData]):
    EVENT_TYPE = "BalanceChanged"
    EVENT_VERSION = 1


class BalanceChangeRejectedData(EventData):
    """A debit that would take the balance below zero was refused; nothing changed."""

    cause_event_id: str = Field(max_length=64)
    cause_event_type: str = Field(max_length=64)
    account: str = Field(max_length=64)
    requested_delta: int
    available: int = Field(ge=0)
    reason: Literal["insufficient_funds", "no_such_account"]


class BalanceChangeRejected(Envelope[BalanceChangeRejectedData]):
    EVENT_TYPE = "BalanceChangeRejected"
    EVENT_VERSION = 1
