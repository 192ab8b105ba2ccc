"""The versioned envelope every event travels in.

An event is `Envelope[Data]` with a fixed `event_type` and a version. Compatible changes
(a new optional field) keep the version; a breaking change is a new class with the next
version beside the old one, and both stay registered until no producer sends the old one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .msisdn import Msisdn


class EventData(BaseModel):
    """Base of every event payload: unknown fields from newer producers are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


DataT = TypeVar("DataT", bound=EventData)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[DataT]):
    """Metadata shared by all events; `subject` (the subscriber's MSISDN) is the Kafka key."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    EVENT_TYPE: ClassVar[str] = ""
    EVENT_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    event_version: int = Field(ge=1)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: str = Field(min_length=1, max_length=64)
    correlation_id: str = Field(min_length=1, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    subject: Msisdn
    data: DataT

    @model_validator(mode="after")
    def _type_and_version_match_the_class(self) -> Self:
        if self.EVENT_TYPE and self.event_type != self.EVENT_TYPE:
            raise ValueError(f"event_type {self.event_type!r} is not {self.EVENT_TYPE!r}")
        if self.EVENT_TYPE and self.event_version != self.EVENT_VERSION:
            raise ValueError(f"{self.EVENT_TYPE} v{self.event_version} is not v{self.EVENT_VERSION}")
        return self

    @classmethod
    def new(
        cls,
        *,
        subject: str,
        data: DataT,
        producer: str,
        correlation_id: str,
        causation_id: str | None = None,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        fields: dict[str, Any] = {
            "event_type": cls.EVENT_TYPE,
            "event_version": cls.EVENT_VERSION,
            "producer": producer,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "subject": subject,
            "data": data,
        }
        if event_id is not None:
            fields["event_id"] = event_id
        if occurred_at is not None:
            fields["occurred_at"] = occurred_at
        return cls(**fields)

    @property
    def key(self) -> bytes:
        """Kafka key: the subscriber, so one subscriber's events stay in order."""
        return self.subject.encode()


class RawEnvelope(BaseModel):
    """Just enough of an envelope to route it to the class that parses it."""

    model_config = ConfigDict(extra="allow")

    event_id: uuid.UUID
    event_type: str
    event_version: int


AnyEvent = Envelope[Any]
"""Any event class, for code that handles events of several types."""
