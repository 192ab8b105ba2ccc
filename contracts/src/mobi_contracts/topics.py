"""Every Kafka topic, its key, partitions, retention and the events on it, in one place.

Topics are created from these declarations (`make topics`); the broker has auto-create off,
so a misspelt topic fails loudly instead of appearing silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import AnyEvent
from .events.account import BalanceChanged, BalanceChangeRejected
from .events.network import UsageRecorded
from .events.payment import BillPaid, PaymentFailed, PaymentSucceeded, TopupRecorded

DAY_MS = 24 * 3600 * 1000
KEY_SUBJECT = "subject MSISDN (84xxxxxxxxx, UTF-8): one subscriber's events stay in order"


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    events: tuple[type[AnyEvent], ...]
    producer: str
    partitions: int = 3
    retention_ms: int = 7 * DAY_MS
    key: str = KEY_SUBJECT

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


PAYMENT_EVENTS = Topic(
    name="payment.events.v1",
    description="Payments confirmed or failed, top-ups to credit and bills paid.",
    events=(PaymentSucceeded, PaymentFailed, TopupRecorded, BillPaid),
    producer="payment-service",
)
ACCOUNT_EVENTS = Topic(
    name="account.events.v1",
    description="Balance changes (one per ledger entry) and refused debits.",
    events=(BalanceChanged, BalanceChangeRejected),
    producer="account-service",
)
NETWORK_USAGE = Topic(
    name="network.usage.v1",
    description="Rated usage (calls, SMS, data) from the charging mediation.",
    events=(UsageRecorded,),
    producer="ocs-mediation",
)

TOPICS: tuple[Topic, ...] = (PAYMENT_EVENTS, ACCOUNT_EVENTS, NETWORK_USAGE)


@dataclass(frozen=True)
class ConsumerGroup:
    """A consumer group, the topics it reads and the events it acts on (others are skipped)."""

    name: str
    topics: tuple[Topic, ...]
    handles: tuple[type[AnyEvent], ...]
    dead_letter: Topic = field(init=False)

    def __post_init__(self) -> None:
        dlq = Topic(
            name=f"dlq.{self.name}",
            description=(
                f"Dead letters of consumer group {self.name}: the original value and key, with "
                "headers dlq-topic, dlq-partition, dlq-offset, dlq-error, dlq-reason, dlq-attempts."
            ),
            events=(),
            producer=self.name,
            partitions=1,
            retention_ms=30 * DAY_MS,
            key="the original message's key",
        )
        object.__setattr__(self, "dead_letter", dlq)


ACCOUNT_LEDGER_GROUP = ConsumerGroup(
    name="account-service",
    topics=(PAYMENT_EVENTS, NETWORK_USAGE),
    handles=(TopupRecorded, BillPaid, UsageRecorded),
)

PAYMENT_CREDITS_GROUP = ConsumerGroup(
    name="payment-service",
    topics=(ACCOUNT_EVENTS,),
    handles=(BalanceChanged,),
)

CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (ACCOUNT_LEDGER_GROUP, PAYMENT_CREDITS_GROUP)


def all_topics() -> tuple[Topic, ...]:
    """Event topics and every group's dead-letter topic."""
    return TOPICS + tuple(group.dead_letter for group in CONSUMER_GROUPS)
