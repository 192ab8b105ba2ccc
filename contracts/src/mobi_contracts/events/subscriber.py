"""The subscriber's life, as the operator's provisioning (BSS) records it in the account
service (topic `subscriber.lifecycle.v1`, keyed by the MSISDN).

A number is a subscriber's for a *tenancy*: from `owner_since` until the number is
terminated, ported out or given to another person. Numbers are recycled: the next owner
must inherit nothing of the previous one. So every service acts on these events:

- `SubscriberOwnerChanged`, `SubscriberTerminated`, `SubscriberPortedOut`: everything the
  previous tenancy left running ends, with no further charge (VAS subscriptions and their
  renewals, the loyalty membership and its points, registered devices and notification
  preferences, feedback tickets); balances are not inherited.
- `SubscriberSuspended` / `SubscriberReactivated`: the same owner, service paused / resumed.

Records a service keeps about a number carry when they were made; what was made before
the current `owner_since` belongs to a previous tenancy and is never shown to, or charged
to, the current owner (access tokens carry `owner_since` too, so views need not wait for
these events). Every event is a decision of the account service named by `change_id`, so
a replay or a duplicate changes nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from ..envelope import Envelope, EventData

SubscriberStatus = Literal["active", "suspended", "terminated", "ported_out"]
Billing = Literal["prepaid", "postpaid"]


class SubscriberLifecycleData(EventData):
    change_id: str = Field(
        min_length=1, max_length=96, description="the provisioning change; unique, the consumers' dedupe key"
    )
    status: SubscriberStatus = Field(description="the subscription's status after the change")
    plan: Billing
    owner_since: AwareDatetime = Field(
        description="start of the current owner's tenancy: records made before it are not this owner's"
    )
    changed_at: AwareDatetime


class SubscriberOwnerChangedData(SubscriberLifecycleData):
    previous_owner_since: AwareDatetime | None = Field(
        default=None, description="start of the tenancy that ended (absent if unknown)"
    )


class SubscriberOwnerChanged(Envelope[SubscriberOwnerChangedData]):
    """The number now belongs to another person: the previous owner's tenancy ended."""

    EVENT_TYPE = "SubscriberOwnerChanged"
    EVENT_VERSION = 1


class SubscriberSuspended(Envelope[SubscriberLifecycleData]):
    """Same owner, service paused (unpaid bill, lost SIM, the owner's request)."""

    EVENT_TYPE = "SubscriberSuspended"
    EVENT_VERSION = 1


class SubscriberReactivated(Envelope[SubscriberLifecycleData]):
    """Same owner, service resumed after a suspension."""

    EVENT_TYPE = "SubscriberReactivated"
    EVENT_VERSION = 1


class SubscriberTerminated(Envelope[SubscriberLifecycleData]):
    """The subscription ended: the tenancy is over (the number may be recycled later)."""

    EVENT_TYPE = "SubscriberTerminated"
    EVENT_VERSION = 1


class SubscriberPortedOut(Envelope[SubscriberLifecycleData]):
    """The number moved to another operator: the tenancy with us is over."""

    EVENT_TYPE = "SubscriberPortedOut"
    EVENT_VERSION = 1
