"""Events about no one subscriber (a campaign for many), beside the per-subscriber `Envelope`.

Every other event is about one subscriber: its `subject` is the MSISDN and the Kafka key, so
that subscriber's events stay in order. A promotion is published once for an audience of
millions; it has no subject. A `BroadcastEnvelope` is an `Envelope` (the registry, the
consumers and the publisher handle it unchanged) whose `subject` may be absent and whose key
is a field of its data (`KEY_FIELD`, e.g. the promotion id), so republishing the same thing
lands on the same partition. Only topics declared `per_subscriber=False` carry them
(contracts/tests check both ways).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Generic, Self

from pydantic import Field

from .envelope import DataT, Envelope
from .msisdn import Msisdn


class BroadcastEnvelope(Envelope[DataT], Generic[DataT]):
    KEY_FIELD: ClassVar[str] = ""

    # Absent on a broadcast; if a producer sends one it is kept but means nothing.
    subject: Msisdn | None = Field(default=None)  # type: ignore[assignment]

    @property
    def key(self) -> bytes:
        """Kafka key: the data's `KEY_FIELD` (e.g. the promotion id), not a subscriber."""
        return str(getattr(self.data, self.KEY_FIELD)).encode()

    @classmethod
    def create(
        cls,
        *,
        data: DataT,
        producer: str,
        correlation_id: str,
        causation_id: str | None = None,
        event_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """`Envelope.new` without a subject (`new` types it for per-subscriber events)."""
        return cls.new(
            subject=None,  # type: ignore[arg-type]
            data=data,
            producer=producer,
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
            occurred_at=occurred_at,
        )
