"""Events of the stores and support service (topic `stores.events.v1`).

A subscriber's feedback is a ticket: `FeedbackReceived` when it is filed (for the teams that
triage it), `FeedbackAnswered` when customer care replies or changes its status (the notify
service tells the subscriber). The text is the subscriber's own words, sanitised (no control
characters) but never HTML-escaped: consumers must treat it as plain text. From v2 on, neither
the subscriber's text nor the reply travels on the bus: both stay in the stores service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from ..envelope import Envelope, EventData

FeedbackCategory = Literal["network", "billing", "app", "store", "promotion", "suggestion", "other"]
FeedbackStatus = Literal["received", "in_progress", "answered", "closed"]


class FeedbackReceivedData(EventData):
    ticket: str = Field(
        min_length=1, max_length=32, description="shown to the subscriber, e.g. GY2611-7K3M9Q"
    )
    category: FeedbackCategory
    text: str = Field(min_length=1, max_length=4000, description="plain text, never HTML")
    rating: int | None = Field(default=None, ge=1, le=5)
    app_version: str | None = Field(default=None, max_length=32)
    device: str | None = Field(default=None, max_length=64)
    screen: str | None = Field(default=None, max_length=64)
    received_at: AwareDatetime


class FeedbackReceived(Envelope[FeedbackReceivedData]):
    """v1 carried the subscriber's own words on a topic kept for days: superseded by v2."""

    EVENT_TYPE = "FeedbackReceived"
    EVENT_VERSION = 1


class FeedbackReceivedV2Data(EventData):
    """A ticket was filed. The subscriber's words stay in the stores service's store (teams
    read them there, by ticket); the event carries what triage needs to route it."""

    ticket: str = Field(min_length=1, max_length=32, description="e.g. GY2611-7K3M9Q")
    category: FeedbackCategory
    rating: int | None = Field(default=None, ge=1, le=5)
    app_version: str | None = Field(default=None, max_length=32)
    device: str | None = Field(default=None, max_length=64)
    screen: str | None = Field(default=None, max_length=64)
    received_at: AwareDatetime


class FeedbackReceivedV2(Envelope[FeedbackReceivedV2Data]):
    EVENT_TYPE = "FeedbackReceived"
    EVENT_VERSION = 2


class FeedbackAnsweredData(EventData):
    """Customer care replied to a ticket and/or moved it to another status."""

    ticket: str = Field(min_length=1, max_length=32)
    status: FeedbackStatus
    reply: str | None = Field(default=None, max_length=4000, description="plain text; null: status only")
    answered_at: AwareDatetime


class FeedbackAnswered(Envelope[FeedbackAnsweredData]):
    """v1 carried customer care's reply text on the bus: superseded by v2."""

    EVENT_TYPE = "FeedbackAnswered"
    EVENT_VERSION = 1


class FeedbackAnsweredV2Data(EventData):
    """Customer care replied to a ticket and/or moved it to another status. The reply stays
    in the stores service (the subscriber reads it in the app); the push says there is one."""

    ticket: str = Field(min_length=1, max_length=32)
    status: FeedbackStatus
    has_reply: bool
    answered_at: AwareDatetime


class FeedbackAnsweredV2(Envelope[FeedbackAnsweredV2Data]):
    EVENT_TYPE = "FeedbackAnswered"
    EVENT_VERSION = 2
