"""Which failures are the infrastructure's (wait and retry) and which are the message's (dead letter).

An outage must never turn into dead letters: a store, Redis or broker that is down or
restarting makes every event fail, and dead-lettering them would drop money events on the
floor. So the kit treats a failure as the message's fault only when it is of a kind that
data causes AND the dependencies answer; everything else is an outage and the batch waits.

- transient by type: connection errors and timeouts of any client, every Kafka and Redis
  error, and every store error except the few codes that mean "this document is wrong"
  (FerretDB answers InternalError, code 1, to every command while PostgreSQL is down);
- data by type: `PoisonEvent`, validation and value errors, a store error with a data code;
- anything else: the consumer asks its dependencies (`DependencyProbe`); if one does not
  answer it is an outage, otherwise the message is poison.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from redis.exceptions import RedisError


class TransientError(Exception):
    """Raise from a handler for a condition that another try may not meet (e.g. a write conflict)."""


class PoisonEvent(ValueError):
    """Raise from a handler for an event that can never be applied (it is dead-lettered)."""


# Store error codes caused by the document or the request, not by the server's health.
DATA_ERROR_CODES = frozenset(
    {
        2,  # BadValue
        9,  # FailedToParse
        14,  # TypeMismatch
        52,  # DollarPrefixedFieldName
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        66,  # ImmutableField
        121,  # DocumentValidationFailure
        10334,  # BSONObjectTooLarge
        11000,  # DuplicateKey (a handler that lets one escape has a bug or bad data)
    }
)

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    KafkaError,
    RedisError,
    TimeoutError,
    ConnectionError,
    OSError,
)

DATA_TYPES: tuple[type[BaseException], ...] = (ValueError, TypeError, LookupError, ArithmeticError)

DependencyProbe = Callable[[], Awaitable[bool]]
"""True when the store, Redis and the broker all answer."""


def kind_of(exc: BaseException) -> str:
    """'transient', 'data' or 'unknown' (ask the dependencies)."""
    if isinstance(exc, DuplicateKeyError):
        return "data"
    if isinstance(exc, OperationFailure):
        return "data" if exc.code in DATA_ERROR_CODES else "transient"
    if isinstance(exc, (PyMongoError, *TRANSIENT_TYPES)):
        return "transient"
    if isinstance(exc, DATA_TYPES):
        return "data"
    return "unknown"


async def is_outage(exc: BaseException, probe: DependencyProbe | None) -> bool:
    """True when the failure is the infrastructure's: retry the batch, never dead-letter it."""
    kind = kind_of(exc)
    if kind == "transient":
        return True
    if probe is None:
        return False
    try:
        return not await probe()
    except Exception:
        return True
