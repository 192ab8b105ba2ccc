"""Every Kafka topic, its key, partitions, retention and the events on it, in one place.

Topics are created from these declarations (`make topics`); the broker has auto-create off,
so a misspelt topic fails loudly instead of appearing silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import AnyEvent
from .events.account import BalanceChanged, BalanceChangeRejected
from .events.loyalty import (
    ECodeIssued,
    ECodeIssuedV2,
    MemberCardRequested,
    MemberEnrolled,
    PointsEarned,
    PointsExpired,
    PointsRedeemed,
    PointsReversed,
    PointsTransferred,
    RedemptionGranted,
    RedemptionRefused,
    TierChanged,
)
from .events.network import UsageRecorded
from .events.notify import PromotionPublished
from .events.payment import BillPaid, PaymentFailed, PaymentSucceeded, TopupRecorded
from .events.stores import FeedbackAnswered, FeedbackAnsweredV2, FeedbackReceived, FeedbackReceivedV2
from .events.subscriber import (
    SubscriberOwnerChanged,
    SubscriberPortedOut,
    SubscriberReactivated,
    SubscriberSuspended,
    SubscriberTerminated,
)
from .events.vas import (
    DataPackPurchased,
    PlanChanged,
    VasCancelled,
    VasCharged,
    VasChargeFailed,
    VasChargeRequested,
    VasChargeRequestedV2,
    VasConfirmed,
    VasRefundRequested,
    VasRenewalDue,
    VasRenewalSkipped,
    VasRenewed,
    VasSubscribed,
)

DAY_MS = 24 * 3600 * 1000
KEY_SUBJECT = "subject MSISDN (84xxxxxxxxx, UTF-8): one subscriber's events stay in order"


@dataclass(frozen=True)
class Topic:
    """A topic, the events it carries and who may write it.

    `producer` owns the topic: only its Kafka principal (and `also_produced_by`'s) may write
    it (the broker's ACLs, derived from these declarations), and consumers act only on an
    event of a type declared here whose envelope names one of those producers; anything
    else is dead-lettered (servicekit.kafka.consumer)."""

    name: str
    description: str
    events: tuple[type[AnyEvent], ...]
    producer: str
    partitions: int = 3
    retention_ms: int = 7 * DAY_MS
    key: str = KEY_SUBJECT
    # False only for topics of events about no one subscriber (BroadcastEnvelope, e.g. a
    # campaign for millions): they are keyed by `key`, not by an MSISDN.
    per_subscriber: bool = True
    also_produced_by: tuple[str, ...] = ()

    @property
    def producers(self) -> tuple[str, ...]:
        return (self.producer, *self.also_produced_by)

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


def channel_title(topic: Topic, event: type[AnyEvent]) -> str:
    """The AsyncAPI channel of an event on a topic; a later version is a channel of its own."""
    title = f"{topic.name}:{event.EVENT_TYPE}"
    return title if event.EVENT_VERSION == 1 else f"{title}:v{event.EVENT_VERSION}"


PAYMENT_EVENTS = Topic(
    name="payment.events.v1",
    description="Payments confirmed or failed, top-ups to credit and bills paid.",
    events=(PaymentSucceeded, PaymentFailed, TopupRecorded, BillPaid),
    producer="payment-service",
)
ACCOUNT_EVENTS = Topic(
    name="account.events.v1",
    description="Balance changes (one per ledger entry) and refused debits.",
    events=(BalanceChanged, BalanceChangeRejected, RedemptionGranted, RedemptionRefused),
    producer="account-service",
)
NETWORK_USAGE = Topic(
    name="network.usage.v1",
    description="Rated usage (calls, SMS, data) from the charging mediation.",
    events=(UsageRecorded,),
    producer="ocs-mediation",
)

# --- VAS and data packs (services/vas) ---
VAS_EVENTS = Topic(
    name="vas.events.v1",
    description="VAS subscriptions, charges and renewals, data packs and plan changes; redemption grants.",
    events=(
        VasChargeRequested,
        VasChargeRequestedV2,
        PlanChanged,
        RedemptionGranted,
        RedemptionRefused,
        VasSubscribed,
        VasConfirmed,
        VasCharged,
        VasChargeFailed,
        VasRenewalDue,
        VasRenewed,
        VasRenewalSkipped,
        VasCancelled,
        VasRefundRequested,
        DataPackPurchased,
    ),
    producer="vas-service",
)
# --- loyalty programme (services/loyalty) ---
LOYALTY_EVENTS = Topic(
    name="loyalty.events.v1",
    description="Loyalty membership, points earned, transferred, redeemed, expired and reversed.",
    events=(
        MemberEnrolled,
        PointsEarned,
        PointsTransferred,
        PointsRedeemed,
        PointsExpired,
        PointsReversed,
        TierChanged,
        ECodeIssued,
        ECodeIssuedV2,
        MemberCardRequested,
    ),
    producer="loyalty-service",
)
# --- campaign promotions (published by campaign teams, read by services/notify) ---
PROMOTIONS = Topic(
    name="promotions.v1",
    description="Promotions published by campaign teams (or notify's admin API) for fan-out.",
    events=(PromotionPublished,),
    producer="campaign-tools",
    # Notify's admin API (POST /internal/v1/promotions) publishes for campaign teams too.
    also_produced_by=("notify-service",),
    # The documented exception to "keyed by MSISDN": a promotion is about no one subscriber.
    key="promotion_id (UTF-8): a promotion has no subject; its re-publishes share a partition",
    per_subscriber=False,
)
# --- stores and support (services/stores) ---
STORES_EVENTS = Topic(
    name="stores.events.v1",
    description="Subscriber feedback received and answered.",
    events=(FeedbackReceived, FeedbackAnswered, FeedbackReceivedV2, FeedbackAnsweredV2),
    producer="stores-service",
)
# --- the subscriber's life (services/account, from the operator's provisioning) ---
SUBSCRIBER_LIFECYCLE = Topic(
    name="subscriber.lifecycle.v1",
    description="A number's tenancy: owner changed, suspended, reactivated, terminated, ported out.",
    events=(
        SubscriberOwnerChanged,
        SubscriberSuspended,
        SubscriberReactivated,
        SubscriberTerminated,
        SubscriberPortedOut,
    ),
    producer="account-service",
    # Rare and decisive (a recycled number must inherit nothing): kept longer than a consumer
    # can plausibly be down.
    retention_ms=30 * DAY_MS,
)

TOPICS: tuple[Topic, ...] = (
    PAYMENT_EVENTS,
    ACCOUNT_EVENTS,
    NETWORK_USAGE,
    VAS_EVENTS,
    LOYALTY_EVENTS,
    PROMOTIONS,
    STORES_EVENTS,
    SUBSCRIBER_LIFECYCLE,
)

# Lifecycle events after which nothing of the previous tenancy may run or be shown.
TENANCY_ENDED_EVENTS = (SubscriberOwnerChanged, SubscriberTerminated, SubscriberPortedOut)


@dataclass(frozen=True)
class ConsumerGroup:
    """A consumer group, the topics it reads and the events it acts on (others are skipped)."""

    name: str
    topics: tuple[Topic, ...]
    handles: tuple[type[AnyEvent], ...]
    # The service that consumes as this group (its Kafka principal); the group's name unless a
    # service runs more than one group (the account ledger's lanes).
    owner: str = ""
    dead_letter: Topic = field(init=False)

    def __post_init__(self) -> None:
        if not self.owner:
            object.__setattr__(self, "owner", self.name)
        dlq = Topic(
            name=f"dlq.{self.name}",
            description=(
                f"Dead letters of consumer group {self.name}: the original value and key, with "
                "headers dlq-topic, dlq-partition, dlq-offset, dlq-error, dlq-reason, dlq-attempts."
            ),
            events=(),
            producer=self.owner,
            partitions=1,
            retention_ms=30 * DAY_MS,
            key="the original message's key",
        )
        object.__setattr__(self, "dead_letter", dlq)


# The account ledger decides in two lanes, each its own group of the account service: money in
# and what a subscriber asks for (top-ups, bills, VAS, rewards, tenancy ends), and the charging
# system's usage feed, the operator's highest-volume stream. A top-up never waits behind a
# backlog of usage; both lanes decide on the one journal, whose unique (msisdn, seq) serialises
# their decisions on a subscriber (services/account ledger.py).
ACCOUNT_LEDGER_GROUP = ConsumerGroup(
    name="account-service",
    topics=(PAYMENT_EVENTS, VAS_EVENTS, LOYALTY_EVENTS, SUBSCRIBER_LIFECYCLE),
    handles=(
        TopupRecorded,
        BillPaid,
        VasChargeRequested,
        VasChargeRequestedV2,
        VasRefundRequested,
        PlanChanged,
        PointsRedeemed,
        *TENANCY_ENDED_EVENTS,
    ),
)

ACCOUNT_USAGE_GROUP = ConsumerGroup(
    name="account-usage",
    topics=(NETWORK_USAGE,),
    handles=(UsageRecorded,),
    owner="account-service",
)

PAYMENT_CREDITS_GROUP = ConsumerGroup(
    name="payment-service",
    topics=(ACCOUNT_EVENTS,),
    handles=(BalanceChanged,),
)

# Loyalty earns points from payments and hears the granters' answers to its redemptions.
LOYALTY_GROUP = ConsumerGroup(
    name="loyalty-service",
    topics=(PAYMENT_EVENTS, ACCOUNT_EVENTS, VAS_EVENTS, SUBSCRIBER_LIFECYCLE),
    handles=(TopupRecorded, BillPaid, RedemptionGranted, RedemptionRefused, *TENANCY_ENDED_EVENTS),
)

# Notify: campaigns to fan out, projections for audiences (billing, tier, VAS), and the
# events that become transactional pushes (receipts, alerts). One line per handled type.
NOTIFY_GROUP = ConsumerGroup(
    name="notify-service",
    topics=(
        PROMOTIONS,
        PAYMENT_EVENTS,
        ACCOUNT_EVENTS,
        VAS_EVENTS,
        LOYALTY_EVENTS,
        STORES_EVENTS,
        SUBSCRIBER_LIFECYCLE,
    ),
    handles=(
        PromotionPublished,
        TopupRecorded,
        BalanceChanged,
        PlanChanged,
        MemberEnrolled,
        TierChanged,
        PointsTransferred,
        FeedbackAnswered,
        FeedbackAnsweredV2,
        VasConfirmed,
        VasCancelled,
        VasSubscribed,
        VasChargeFailed,
        VasRenewalDue,
        DataPackPurchased,
        ECodeIssued,
        ECodeIssuedV2,
        PointsExpired,
        VasRenewed,
        RedemptionGranted,
        *TENANCY_ENDED_EVENTS,
    ),
)

# VAS: the account service's answers to its charges, and loyalty redemptions of a VAS.
VAS_GROUP = ConsumerGroup(
    name="vas-service",
    topics=(ACCOUNT_EVENTS, LOYALTY_EVENTS, SUBSCRIBER_LIFECYCLE),
    handles=(BalanceChanged, BalanceChangeRejected, PointsRedeemed, *TENANCY_ENDED_EVENTS),
)

# Stores: a number that changes hands hides the previous owner's tickets.
STORES_GROUP = ConsumerGroup(
    name="stores-service",
    topics=(SUBSCRIBER_LIFECYCLE,),
    handles=TENANCY_ENDED_EVENTS,
)

# New services declare their groups above this line and add them here, one per line.
CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (
    ACCOUNT_LEDGER_GROUP,
    ACCOUNT_USAGE_GROUP,
    PAYMENT_CREDITS_GROUP,
    LOYALTY_GROUP,
    NOTIFY_GROUP,
    VAS_GROUP,
    STORES_GROUP,
)


def all_topics() -> tuple[Topic, ...]:
    """Event topics and every group's dead-letter topic."""
    return TOPICS + tuple(group.dead_letter for group in CONSUMER_GROUPS)
