"""Batch consumers: at-least-once delivery, effects applied once, poison to a dead-letter topic.

One FastStream batch subscriber per consumer group. For each batch:
1. parse every record into its event class; malformed ones go to the dead-letter topic,
   events this group does not handle are skipped;
2. drop events the inbox has seen (redeliveries, duplicate publishes);
3. hand the rest to the service's batch handler (bulk store writes, one outbox relay);
   infrastructure failures are retried with backoff and, if they last, the batch is not
   committed: FastStream's NACK_ON_ERROR policy seeks each partition back to the batch's
   first record, so nothing after it can be committed past it (faststream #1980, #2618);
   a failure caused by the data is isolated by splitting the batch, and the one event that
   keeps failing is retried a few times, then dead-lettered with its error;
4. remember the applied ids in the inbox; then FastStream commits the batch's offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from mobi_contracts import AnyEvent, ConsumerGroup, MalformedEvent, UnknownEvent, parse_event

from ..logs import correlation_id
from ..metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_BATCH_SECONDS,
    EVENT_BATCHES,
    EVENT_DELIVERY_SECONDS,
    EVENTS_CONSUMED,
)
from .errors import is_transient
from .inbox import Inbox
from .publisher import EventPublisher

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[AnyEvent]], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    transient_attempts: int = 5  # then the batch is nacked and fetched again
    poison_attempts: int = 3  # tries of a single event before it is dead-lettered
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))


@dataclass
class _Outcome:
    applied: list[AnyEvent] = field(default_factory=list)
    failed: list[tuple[AnyEvent, BaseException, int]] = field(default_factory=list)


class EventConsumer:
    def __init__(
        self,
        group: ConsumerGroup,
        handler: BatchHandler,
        *,
        service: str,
        inbox: Inbox,
        publisher: EventPublisher,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.group = group
        self.handler = handler
        self.service = service
        self.inbox = inbox
        self.publisher = publisher
        self.retry = retry or RetryPolicy()
        self._known = {(c.EVENT_TYPE, c.EVENT_VERSION): c for c in group.handles}

    # -- FastStream binding -------------------------------------------------------------

    def subscribe(
        self, broker: KafkaBroker, *, max_records: int, batch_timeout_ms: int, fetch_max_wait_ms: int = 500
    ) -> None:
        handled = ", ".join(f"{c.EVENT_TYPE} v{c.EVENT_VERSION}" for c in self.group.handles)
        subscriber = broker.subscriber(
            *(topic.name for topic in self.group.topics),
            group_id=self.group.name,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            fetch_max_wait_ms=fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_keep_raw,
            title=f"{self.group.name}:consume",
            description=f"Consumer group {self.group.name}; acts on {handled}; dead letters to "
            f"{self.group.dead_letter.name}.",
        )

        async def on_batch(message: KafkaMessage) -> None:
            records = message.raw_message
            batch = records if isinstance(records, tuple) else (records,)
            await self.process(batch)
            self._record_lag(message.consumer, batch)

        subscriber(on_batch)

    # -- the pipeline ----------------------------------------------------------------------

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        started = time.perf_counter()
        self._record_delivery(records)
        events, sources = await self._parse(records)
        seen = await self.inbox.seen([str(e.event_id) for e in events])
        fresh = [e for e in events if str(e.event_id) not in seen]
        self._count(events, "duplicate", lambda e: str(e.event_id) in seen, sources)
        outcome = await self._apply_with_retries(fresh)
        for event, error, attempts in outcome.failed:
            await self._dead_letter(sources[str(event.event_id)], "handler_error", error, attempts)
        await self.inbox.remember(str(e.event_id) for e in outcome.applied)
        self._count(outcome.applied, "applied", lambda e: True, sources)
        EVENT_BATCHES.labels(self.service, self.group.name, "ok").inc()
        EVENT_BATCH_SECONDS.labels(self.service, self.group.name).observe(time.perf_counter() - started)

    async def _parse(
        self, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> tuple[list[AnyEvent], dict[str, ConsumerRecord[Any, Any]]]:
        events: list[AnyEvent] = []
        sources: dict[str, ConsumerRecord[Any, Any]] = {}
        for record in records:
            try:
                event = parse_event(record.value or b"", self._known)
            except UnknownEvent:
                EVENTS_CONSUMED.labels(self.service, self.group.name, record.topic, "ignored").inc()
                continue
            except MalformedEvent as exc:
                await self._dead_letter(record, "malformed", exc, 1)
                continue
            key = str(event.event_id)
            if key in sources:  # the same event twice in one batch
                EVENTS_CONSUMED.labels(self.service, self.group.name, record.topic, "duplicate").inc()
                continue
            sources[key] = record
            events.append(event)
        return events, sources

    async def _apply_with_retries(self, events: list[AnyEvent]) -> _Outcome:
        for attempt in range(self.retry.transient_attempts):
            try:
                return await self._isolate_poison(events)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                EVENT_BATCHES.labels(self.service, self.group.name, "retried").inc()
                log.warning(
                    "transient failure, retrying batch",
                    extra={"group": self.group.name, "attempt": attempt + 1, "error": repr(exc)},
                )
                await asyncio.sleep(self.retry.delay(attempt))
        EVENT_BATCHES.labels(self.service, self.group.name, "failed").inc()
        # Not committed: FastStream seeks back and the batch comes again after the backoff.
        raise RuntimeError(f"{self.group.name}: batch failed {self.retry.transient_attempts} times")

    async def _isolate_poison(self, events: list[AnyEvent]) -> _Outcome:
        """Apply events; a data failure is narrowed down by halves to the events causing it."""
        outcome = _Outcome()
        if not events:
            return outcome
        try:
            await self._call_handler(events)
            outcome.applied.extend(events)
            return outcome
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(events) == 1:
                return await self._retry_single(events[0], exc)
        middle = len(events) // 2
        for half in (events[:middle], events[middle:]):
            part = await self._isolate_poison(half)
            outcome.applied.extend(part.applied)
            outcome.failed.extend(part.failed)
        return outcome

    async def _retry_single(self, event: AnyEvent, first_error: BaseException) -> _Outcome:
        error = first_error
        for attempt in range(1, self.retry.poison_attempts):
            await asyncio.sleep(self.retry.delay(attempt - 1) / 4)
            try:
                await self._call_handler([event])
                return _Outcome(applied=[event])
            except Exception as exc:
                if is_transient(exc):
                    raise
                error = exc
        return _Outcome(failed=[(event, error, self.retry.poison_attempts)])

    async def _call_handler(self, events: list[AnyEvent]) -> None:
        token = correlation_id.set(events[0].correlation_id if len(events) == 1 else None)
        try:
            await self.handler(events)
        finally:
            correlation_id.reset(token)

    # -- dead letters, metrics ---------------------------------------------------------------

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, error: BaseException, attempts: int
    ) -> None:
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
        headers = [
            *(record.headers or ()),
            ("dlq-topic", record.topic.encode()),
            ("dlq-partition", str(record.partition).encode()),
            ("dlq-offset", str(record.offset).encode()),
            ("dlq-group", self.group.name.encode()),
            ("dlq-reason", reason.encode()),
            ("dlq-error", detail.encode()),
            ("dlq-attempts", str(attempts).encode()),
            ("dlq-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.publisher.send_raw(
            self.group.dead_letter.name, key=record.key, value=record.value, headers=headers
        )
        DEAD_LETTERS.labels(self.service, self.group.name, record.topic, reason).inc()
        EVENTS_CONSUMED.labels(self.service, self.group.name, record.topic, "dead_lettered").inc()
        log.error(
            "message dead-lettered",
            extra={
                "group": self.group.name,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "error": detail,
            },
        )

    def _count(
        self,
        events: list[AnyEvent],
        outcome: str,
        which: Callable[[AnyEvent], bool],
        sources: dict[str, ConsumerRecord[Any, Any]],
    ) -> None:
        for event in events:
            if which(event):
                topic = sources[str(event.event_id)].topic
                EVENTS_CONSUMED.labels(self.service, self.group.name, topic, outcome).inc()

    def _record_delivery(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        now_ms = time.time() * 1000
        for r in records:
            if r.timestamp and r.timestamp > 0:
                delay = max(0.0, now_ms - r.timestamp) / 1000
                EVENT_DELIVERY_SECONDS.labels(self.service, self.group.name, r.topic).observe(delay)

    def _record_lag(self, consumer: Any, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        if not isinstance(consumer, AIOKafkaConsumer):
            return
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last.get(tp, -1), r.offset)
        for tp, offset in last.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, self.group.name, tp.topic, str(tp.partition)).set(
                    max(0, highwater - offset - 1)
                )


async def _keep_raw(message: Any) -> None:
    """The pipeline parses records itself (a poison record must not fail the whole batch)."""
    return None
