"""Batch consumers: at-least-once delivery, effects applied once, poison to a dead-letter topic.

One FastStream batch subscriber per consumer group. For each batch:
1. parse every record into its event class. A malformed record, or an event of a type the
   group handles in a version this build does not know, is dead-lettered with the reason
   (a producer upgrade must never make money events vanish); types the group does not
   handle are skipped. Provenance: an event is acted on only from the topic that carries
   its type and only when its envelope names one of that topic's producers (whose Kafka
   principals alone may write it); any other is dead-lettered (`not_on_this_topic`,
   `not_from_topic_owner`) and changes nothing. A contract's event met on a topic that does
   not carry it is dead-lettered even when this group does not handle it: a credit forged
   on the usage topic is a signal, whichever of a service's groups reads that topic;
2. drop events the inbox has seen (redeliveries, duplicate publishes; the fast path, the
   durable guard is in each handler's store);
3. hand the rest to the service's batch handler (bulk store writes, one relay of events).
   A failure caused by the data is narrowed down by splitting the batch; the one event
   that keeps failing is tried a few times, then dead-lettered with its error;
4. remember the applied ids in the inbox; then FastStream commits the batch's offsets.

An outage (store, Redis or broker down; see `errors.is_outage`) is never a dead letter:
the whole batch is retried with capped backoff for as long as it lasts, and the consumer
reports itself unhealthy (readiness false) meanwhile. To stay inside Kafka's poll
interval it gives the batch back every `RetryPolicy.hold_seconds`: FastStream 0.7.8's
NACK_ON_ERROR policy then seeks every partition of the batch back to its first record, so
nothing after it can be committed past it (faststream #1980, #2618; pinned and tested in
test_consumer_on_kafka.py), and the next fetch continues the same backoff.

At shutdown (`stop`) the consumer takes no new batch, finishes the one in hand and commits
it, then leaves its group; a batch that is waiting out an outage is given back at once
instead (uncommitted: the next member of the group gets it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from mobi_contracts import (
    EVENT_CLASSES,
    AnyEvent,
    ConsumerGroup,
    MalformedEvent,
    UnknownEvent,
    channel_title,
    parse_with_id,
)

from ..logs import correlation_id
from ..metrics import (
    CONSUMER_HEALTHY,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_BATCH_SECONDS,
    EVENT_BATCHES,
    EVENT_DELIVERY_SECONDS,
    EVENTS_CONSUMED,
)
from .assignor import CoPartitionAssignor
from .errors import DependencyProbe, PoisonEvent, is_outage
from .inbox import Inbox
from .publisher import EventPublisher

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[AnyEvent]], Awaitable[None]]
_TOPIC_PARTITION = attrgetter("topic", "partition")
_TOPIC = attrgetter("topic")
HEARTBEAT_INTERVAL_MS = 1_000  # see EventConsumer.subscribe
Record: TypeAlias = ConsumerRecord[Any, Any]


@dataclass(frozen=True)
class RetryPolicy:
    poison_attempts: int = 3  # tries of a single event that fails by its data before the dead letter
    base_delay: float = 0.2
    max_delay: float = 10.0  # cap of the outage backoff
    hold_seconds: float = 30.0  # longest a failing batch is held before it is given back (nack)

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))


class BatchGivenBack(RuntimeError):
    """The batch could not be applied during an outage; not committed, fetched again."""


@dataclass
class _Outcome:
    applied: list[AnyEvent] = field(default_factory=list)
    failed: list[tuple[AnyEvent, BaseException, int]] = field(default_factory=list)


@dataclass
class _Parsed:
    events: list[AnyEvent] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # str(event_id) of each event, made once
    sources: dict[str, Record] = field(default_factory=dict)
    rejected: list[tuple[Record, str, BaseException]] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)


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
        probe: DependencyProbe | None = None,
        member: int = 0,
    ) -> None:
        self.group = group
        self.member = str(member)  # which of the group's members in this process
        self.handler = handler
        self.service = service
        self.inbox = inbox
        self.publisher = publisher
        self.retry = retry or RetryPolicy()
        self.probe = probe
        self._known = {(c.EVENT_TYPE, c.EVENT_VERSION): c for c in group.handles}
        self._handled_types = {c.EVENT_TYPE for c in group.handles}
        self._topics = {topic.name: topic for topic in group.topics}
        self._outage_attempt = 0
        self._subscriber: Any = None
        self._stopping = asyncio.Event()
        self.failing_since: float | None = None
        self.last_error = ""
        CONSUMER_HEALTHY.labels(service, group.name, self.member).set(1)

    @property
    def healthy(self) -> bool:
        return self.failing_since is None

    # -- FastStream binding -------------------------------------------------------------

    def subscribe(
        self, broker: KafkaBroker, *, max_records: int, batch_timeout_ms: int, fetch_max_wait_ms: int = 500
    ) -> None:
        self._subscriber = subscriber = broker.subscriber(
            *(topic.name for topic in self.group.topics),
            group_id=self.group.name,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=batch_timeout_ms,
            fetch_max_wait_ms=fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            # A rebalance waits for every member's next heartbeat: at aiokafka's 3 s, a service
            # whose members join one after another (FastStream starts them in turn) stopped its
            # groups' consumption for 3 s per member at every start (13 s for the account
            # service's six). Session timeout unchanged (10 s): a hung member still leaves.
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            # One member owns partition p of every topic: one writer per subscriber.
            partition_assignment_strategy=(CoPartitionAssignor,),
            parser=_lean_batch,
            decoder=_keep_raw,
            include_in_schema=False,  # documented with the event schemas by `document_consumer`
        )

        async def on_batch(message: KafkaMessage) -> None:
            records = message.raw_message
            batch = records if isinstance(records, tuple) else (records,)
            await self.process(batch)
            self._record_lag(message.consumer, batch)

        subscriber(on_batch)

    async def stop(self) -> None:
        """Finish the batch in hand (FastStream waits for it up to the broker's
        graceful_timeout), commit it and leave the group (the consumer's close)."""
        self._stopping.set()
        if self._subscriber is not None:
            await self._subscriber.stop()

    def document(self, docs_broker: KafkaBroker) -> None:
        """List the group's channels with each handled event's schema in the AsyncAPI document."""
        for topic in self.group.topics:
            for event in self.group.handles:
                if event not in topic.events:
                    continue
                docs_broker.subscriber(
                    topic.name,
                    group_id=self.group.name,
                    title=f"{channel_title(topic, event)}:consume",
                    description=f"Consumer group {self.group.name} acts on {event.EVENT_TYPE} "
                    f"v{event.EVENT_VERSION}; dead letters to {self.group.dead_letter.name}.",
                )(_schema_of(event))

    # -- the pipeline ----------------------------------------------------------------------

    async def process(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()
        self._record_delivery(records)
        parsed = self._parse(records)
        await self._through_outages(lambda: self._apply_batch(parsed))
        for (topic, outcome), count in parsed.counts.items():
            EVENTS_CONSUMED.labels(self.service, self.group.name, topic, outcome).inc(count)
        EVENT_BATCHES.labels(self.service, self.group.name, "ok").inc()
        EVENT_BATCH_SECONDS.labels(self.service, self.group.name).observe(time.perf_counter() - started)

    async def _apply_batch(self, parsed: _Parsed) -> None:
        seen = await self.inbox.seen(parsed.keys)
        fresh = (
            [e for k, e in zip(parsed.keys, parsed.events, strict=True) if k not in seen]
            if seen
            else parsed.events
        )
        outcome = await self._isolate_poison(fresh)
        key_of = {id(e): k for k, e in zip(parsed.keys, parsed.events, strict=True)} if outcome.failed else {}
        failed = {key_of[id(event)] for event, _, _ in outcome.failed}
        for event, error, attempts in outcome.failed:
            await self._dead_letter(parsed.sources[key_of[id(event)]], "handler_error", error, attempts)
        for record, reason, error in parsed.rejected:
            await self._dead_letter(record, reason, error, 1)
        skip = seen | failed
        await self.inbox.remember([k for k in parsed.keys if k not in skip] if skip else parsed.keys)
        # Counted once the batch is through, so a retried batch is not counted twice; dead
        # letters are counted where they are sent.
        if not skip:
            for topic, count in Counter(map(_TOPIC, parsed.sources.values())).items():
                parsed.counts[(topic, "applied")] += count
            return
        for key, record in parsed.sources.items():
            if key not in failed:
                parsed.counts[(record.topic, "duplicate" if key in seen else "applied")] += 1

    async def _through_outages(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` until it succeeds, with capped backoff.

        What escapes `work` is an outage (data errors are isolated inside it) or a bug in
        the kit; neither may drop the batch, so both wait and try again.
        """
        held_since = time.monotonic()
        while True:
            try:
                await work()
            except Exception as exc:
                self._mark_failing(exc)
                EVENT_BATCHES.labels(self.service, self.group.name, "retried").inc()
                delay = self.retry.delay(self._outage_attempt)
                self._outage_attempt += 1
                held = time.monotonic() - held_since + delay > self.retry.hold_seconds
                if held or self._stopping.is_set() or await self._stopped_within(delay):
                    EVENT_BATCHES.labels(self.service, self.group.name, "given_back").inc()
                    raise BatchGivenBack(f"{self.group.name}: batch given back after {exc!r}") from exc
            else:
                self._mark_healthy()
                return

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep `seconds` unless the consumer is told to stop meanwhile (then True)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _mark_failing(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning(
                "consumer waiting out an outage", extra={"group": self.group.name, "error": repr(exc)}
            )
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        CONSUMER_HEALTHY.labels(self.service, self.group.name, self.member).set(0)

    def _mark_healthy(self) -> None:
        if self.failing_since is not None:
            log.warning(
                "consumer recovered",
                extra={"group": self.group.name, "outage_s": round(time.monotonic() - self.failing_since, 1)},
            )
        self.failing_since = None
        self._outage_attempt = 0
        CONSUMER_HEALTHY.labels(self.service, self.group.name, self.member).set(1)

    def _parse(self, records: Sequence[Record]) -> _Parsed:
        parsed = _Parsed()
        for record in records:
            try:
                event, key = parse_with_id(record.value or b"", self._known)
            except UnknownEvent as exc:
                if exc.event_type in self._handled_types:
                    parsed.rejected.append((record, "unknown_version", exc))
                elif (misplaced := self._misplaced(record.topic, exc)) is not None:
                    parsed.rejected.append((record, "not_on_this_topic", PoisonEvent(misplaced)))
                else:
                    parsed.counts[(record.topic, "ignored")] += 1
                continue
            except MalformedEvent as exc:
                parsed.rejected.append((record, "malformed", exc))
                continue
            distrust = self._distrust(record.topic, event)
            if distrust is not None:
                reason, problem = distrust
                parsed.rejected.append((record, reason, PoisonEvent(problem)))
                continue
            if key in parsed.sources:  # the same event twice in one batch
                parsed.counts[(record.topic, "duplicate")] += 1
                continue
            parsed.sources[key] = record
            parsed.keys.append(key)
            parsed.events.append(event)
        return parsed

    def _misplaced(self, topic_name: str, unknown: UnknownEvent) -> str | None:
        """The problem when an event this group does not handle is a contract's event that
        this topic does not carry (a forgery or a misrouted producer), else None."""
        cls = EVENT_CLASSES.get((unknown.event_type, unknown.event_version))
        return None if cls is None else self._not_carried(topic_name, cls)

    def _not_carried(self, topic_name: str, cls: type[AnyEvent]) -> str | None:
        topic = self._topics.get(topic_name)
        if topic is None or cls not in topic.events:
            return f"{cls.EVENT_TYPE} v{cls.EVENT_VERSION} is not carried by {topic_name}"
        return None

    def _distrust(self, topic_name: str, event: AnyEvent) -> tuple[str, str] | None:
        """(reason, problem) when the event may not be acted on from this topic, else None."""
        problem = self._not_carried(topic_name, type(event))
        if problem is not None:
            return "not_on_this_topic", problem
        topic = self._topics[topic_name]
        if event.producer not in topic.producers:
            owners = ", ".join(topic.producers)
            return "not_from_topic_owner", (
                f"{event.event_type} from {event.producer!r}: only {owners} may write {topic_name}"
            )
        return None

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
            if await is_outage(exc, self.probe):
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
                if await is_outage(exc, self.probe):
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

    async def _dead_letter(self, record: Record, reason: str, error: BaseException, attempts: int) -> None:
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

    def _record_delivery(self, records: Sequence[Record]) -> None:
        """How long the oldest record of each partition in the batch waited since it was
        produced: a bound on every record's wait, at one observation per partition."""
        now_ms = time.time() * 1000
        # A batch holds each partition's records together, oldest first.
        for (topic, _), part in groupby(records, key=_TOPIC_PARTITION):
            produced_ms = next(part).timestamp
            if produced_ms and produced_ms > 0:
                delay = max(0.0, now_ms - produced_ms) / 1000
                EVENT_DELIVERY_SECONDS.labels(self.service, self.group.name, topic).observe(delay)

    def _record_lag(self, consumer: Any, records: Sequence[Record]) -> None:
        if not isinstance(consumer, AIOKafkaConsumer):
            return
        last: dict[tuple[str, int], int] = {}
        for r in records:  # a partition's records come in offset order
            last[(r.topic, r.partition)] = r.offset
        assigned = consumer.assignment()
        for (topic, partition), offset in last.items():
            tp = TopicPartition(topic, partition)
            if tp not in assigned:
                continue  # revoked by a rebalance since the fetch: its lag is its next owner's to tell
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, self.group.name, topic, str(partition)).set(
                    max(0, highwater - offset - 1)
                )


async def _keep_raw(message: Any) -> None:
    """The pipeline parses records itself (a poison record must not fail the whole batch)."""
    return None


async def _lean_batch(records: tuple[Record, ...], original: Callable[..., Awaitable[Any]]) -> Any:
    """FastStream's batch message without its per-record work (a body list and a dict of
    decoded headers for every record), which the pipeline never reads: it reads the raw
    records. FastStream's own batch parser (faststream 0.7.8, pinned) builds the message from
    the first and last records, which give its id, topic and time; the records go in whole."""
    message = await original((_Headless(records[0]), _Headless(records[-1])))
    message.raw_message = records
    return message


class _Headless:
    """A record seen without its headers, for FastStream's parser."""

    __slots__ = ("_record", "headers")

    def __init__(self, record: Record) -> None:
        self._record = record
        self.headers: tuple[()] = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def _schema_of(event: type[AnyEvent]) -> Callable[..., Awaitable[None]]:
    """A documentation-only handler whose signature carries the event's schema."""

    async def consumes(message: Any) -> None:  # pragma: no cover - never called
        return None

    consumes.__annotations__ = {"message": event, "return": None}
    consumes.__name__ = event.EVENT_TYPE
    return consumes
