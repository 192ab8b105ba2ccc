"""A producer whose idempotence state is broken is not retried forever: the service restarts."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from servicekit.kafka.access import KafkaAccess
from servicekit.kafka.publisher import EventPublisher


def failed(exc: Exception) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


@pytest.fixture
def publisher() -> tuple[EventPublisher, list[str]]:
    publisher = EventPublisher(KafkaAccess("127.0.0.1:1", "tests", "x", None), "tests")
    calls: list[str] = []
    publisher.on_broken_producer = lambda: calls.append("restart")
    return publisher, calls


async def test_an_out_of_order_sequence_asks_for_a_restart_and_still_fails_the_publish(
    publisher: tuple[EventPublisher, list[str]],
) -> None:
    pub, calls = publisher
    with pytest.raises(OutOfOrderSequenceNumber):
        await pub._acknowledged([failed(OutOfOrderSequenceNumber())])
    assert calls == ["restart"]


async def test_a_passing_timeout_is_an_error_to_retry_not_a_restart(
    publisher: tuple[EventPublisher, list[str]],
) -> None:
    pub, calls = publisher
    with pytest.raises(KafkaTimeoutError):
        await pub._acknowledged([failed(KafkaTimeoutError())])
    assert calls == []
