"""Publishes events with acks from all in-sync replicas, many in flight at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from mobi_contracts import AnyEvent

from ..metrics import EVENTS_PUBLISHED


def event_headers(event: AnyEvent) -> list[tuple[str, bytes]]:
    return [
        ("content-type", b"application/json"),
        ("event-type", event.event_type.encode()),
        ("event-version", str(event.event_version).encode()),
        ("correlation_id", event.correlation_id.encode()),
    ]


class EventPublisher:
    def __init__(self, bootstrap: str, service: str) -> None:
        self.service = service
        self.bootstrap = bootstrap
        self._started = False

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.service,
            acks="all",
            enable_idempotence=True,  # the broker drops duplicates of the producer's own retries
            linger_ms=2,
            request_timeout_ms=15000,
        )
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        """Send all, then wait for every ack: one round trip for the lot, not one each."""
        futures = [
            await self._producer.send(
                topic, value=event.model_dump_json().encode(), key=event.key, headers=event_headers(event)
            )
            for event in events
        ]
        if futures:
            await asyncio.gather(*futures)
            EVENTS_PUBLISHED.labels(self.service, topic).inc(len(futures))

    async def publish_serialized(self, entries: Sequence[dict[str, Any]]) -> None:
        """Publish outbox entries ({topic, key, value, headers}) as stored."""
        futures = [
            await self._producer.send(
                e["topic"],
                value=e["value"] if isinstance(e["value"], bytes) else str(e["value"]).encode(),
                key=e["key"].encode() if isinstance(e["key"], str) else e["key"],
                headers=[(k, v.encode()) for k, v in e.get("headers", {}).items()],
            )
            for e in entries
        ]
        if futures:
            await asyncio.gather(*futures)
            for e in entries:
                EVENTS_PUBLISHED.labels(self.service, e["topic"]).inc()

    async def send_raw(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        await (await self._producer.send(topic, value=value, key=key, headers=headers))

    async def ping(self) -> None:
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=3)
