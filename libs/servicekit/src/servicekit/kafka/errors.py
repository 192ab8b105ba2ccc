"""Which failures are worth retrying (infrastructure) and which are poison (the message)."""

from __future__ import annotations

from aiokafka.errors import KafkaError
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, NetworkTimeout, WTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class TransientError(Exception):
    """Raise from a handler for a condition that another try may not meet (e.g. a write conflict)."""


TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionFailure,
    AutoReconnect,
    NetworkTimeout,
    ExecutionTimeout,
    WTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
    TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)
