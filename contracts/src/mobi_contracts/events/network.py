"""Usage records from the operator's charging mediation (topic `network.usage.v1`).

Calls, SMS and data sessions are rated by the network's online charging system; each
rated record reaches the platform as `UsageRecorded` and shows up in the charges history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from ..envelope import Envelope, EventData


class UsageRecordedData(EventData):
    usage_id: str = Field(min_length=1, max_length=64)
    kind: Literal["voice", "sms", "data"]
    quantity: int = Field(ge=0)
    unit: Literal["seconds", "messages", "kilobytes"]
    charge_vnd: int = Field(ge=0, le=10_000_000)
    # Data sessions are first taken from data buckets (by kilobytes) before money.
    counterpart: str | None = Field(default=None, max_length=32, description="called number, masked")
    started_at: AwareDatetime


class UsageRecorded(Envelope[UsageRecordedData]):
    EVENT_TYPE = "UsageRecorded"
    EVENT_VERSION = 1
