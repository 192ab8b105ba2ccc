"""Events of the VAS and data-packs service (topic `vas.events.v1`).

Charging is the account service's: the VAS service publishes `VasChargeRequested` (a first
charge, a renewal or a data-pack purchase) and the account service debits the main balance
atomically, never below zero, exactly once per `charge_id`, answering on `account.events.v1`
with `BalanceChanged` (reason `vas_charge`, `cause_event_id` = this event's id) or
`BalanceChangeRejected` (`insufficient_funds`). A pack charge that succeeds also creates what
the pack gives in the same decision: v1 carries a data bucket only; v2 carries every allowance
(data, voice minutes, SMS) as `grants`. The VAS service publishes v2 (a voice pack is not a data
pack, and v1 could only describe it as a money-only charge: debited, nothing granted); the
account service handles both, so replays of v1 stay valid. The VAS service turns the answer
into `VasCharged` or `VasChargeFailed`.

A refund (a subscription started outside the app and cancelled within the refund window) is
`VasRefundRequested`: the account service credits it once per charge (a second refund of the
same `charge_id`, whatever its `refund_id`, is a replay). The rest of the
topic tells a subscription's life: `VasSubscribed` (requested), `VasConfirmed` (active),
`VasRenewalDue` (notice before a renewal), `VasRenewed` / `VasRenewalSkipped`, `VasCancelled`,
`DataPackPurchased` (a paid data pack, bucket included).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AwareDatetime, Field, model_validator

from ..envelope import Envelope, EventData

ChargeKind = Literal["vas_first", "vas_renewal", "data_pack", "data_pack_renewal"]


class DataBucketGrant(EventData):
    """The data bucket a data-pack charge creates when it succeeds."""

    bucket_id: str = Field(min_length=1, max_length=64, description="unique per purchase/renewal")
    name: str = Field(min_length=1, max_length=100)
    quota_kb: int = Field(gt=0, le=1_000_000_000)
    expires_at: AwareDatetime


class VasChargeRequestedData(EventData):
    charge_id: str = Field(min_length=1, max_length=96, description="<subscription id>:<period>")
    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64, description="VAS or pack code")
    kind: ChargeKind
    amount_vnd: int = Field(ge=0, le=10_000_000)
    description: str = Field(default="", max_length=200)
    period_start: AwareDatetime
    period_end: AwareDatetime
    data_bucket: DataBucketGrant | None = None
    requested_at: AwareDatetime
    # Optional (added in v1, compatible): the account service refuses a charge of a subscription
    # agreed to before the number's current owner got it (a recycled number inherits nothing).
    subscribed_at: AwareDatetime | None = Field(
        default=None,
        description="when the subscriber agreed to the subscription (or bought the pack) this "
        "charge is for; a charge of a previous owner's subscription is refused (no_such_account)",
    )

    @model_validator(mode="after")
    def _packs_carry_their_bucket(self) -> VasChargeRequestedData:
        is_pack = self.kind in ("data_pack", "data_pack_renewal")
        if is_pack != (self.data_bucket is not None):
            raise ValueError("a data-pack charge carries its data_bucket, a VAS charge none")
        return self


class VasChargeRequested(Envelope[VasChargeRequestedData]):
    EVENT_TYPE = "VasChargeRequested"
    EVENT_VERSION = 1


GrantKind = Literal["data", "voice", "sms"]
GRANT_UNITS: dict[str, str] = {"data": "kilobytes", "voice": "seconds", "sms": "messages"}


class PackGrant(EventData):
    """One allowance a pack charge creates when it succeeds: a data bucket (kilobytes), voice
    minutes (seconds) or SMS (messages), drained by usage and gone at `expires_at`."""

    grant_id: str = Field(min_length=1, max_length=64, description="unique per purchase/renewal")
    kind: GrantKind
    name: str = Field(min_length=1, max_length=100)
    quantity: int = Field(gt=0, le=1_000_000_000, description="kilobytes | seconds | messages")
    expires_at: AwareDatetime

    @property
    def unit(self) -> str:
        return GRANT_UNITS[self.kind]


class VasChargeRequestedV2Data(EventData):
    """As v1, with what a pack gives as a list of grants (data, voice, SMS) instead of one data
    bucket. `kind` keeps v1's names: `data_pack`/`data_pack_renewal` is any pack."""

    charge_id: str = Field(min_length=1, max_length=96, description="<subscription id>:<period>")
    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64, description="VAS or pack code")
    kind: ChargeKind
    amount_vnd: int = Field(ge=0, le=10_000_000)
    description: str = Field(default="", max_length=200)
    period_start: AwareDatetime
    period_end: AwareDatetime
    grants: list[PackGrant] = Field(default_factory=list, max_length=8)
    requested_at: AwareDatetime
    subscribed_at: AwareDatetime | None = Field(
        default=None,
        description="when the subscriber agreed to the subscription (or bought the pack) this "
        "charge is for; a charge of a previous owner's subscription is refused (no_such_account)",
    )

    @model_validator(mode="after")
    def _packs_carry_their_grants(self) -> VasChargeRequestedV2Data:
        is_pack = self.kind in ("data_pack", "data_pack_renewal")
        if is_pack != bool(self.grants):
            raise ValueError("a pack charge carries its grants, a VAS charge none")
        return self


class VasChargeRequestedV2(Envelope[VasChargeRequestedV2Data]):
    EVENT_TYPE = "VasChargeRequested"
    EVENT_VERSION = 2


class PlanChangedData(EventData):
    """The subscriber's tariff plan changed (requested in the app, checked by the VAS service)."""

    change_id: str = Field(min_length=1, max_length=64)
    old_plan_code: str | None = Field(default=None, max_length=32)
    new_plan_code: str = Field(min_length=1, max_length=32)
    billing: Literal["prepaid", "postpaid"]
    effective_at: AwareDatetime


class PlanChanged(Envelope[PlanChangedData]):
    EVENT_TYPE = "PlanChanged"
    EVENT_VERSION = 1


# --- the subscription's life (all keyed by the subscriber's MSISDN) ---------------------------

Channel = Literal["app", "sms", "partner_web", "loyalty"]
ItemKind = Literal["vas", "pack"]


class VasSubscribedData(EventData):
    """A subscription was requested; `needs_confirmation` when it waits for in-app consent."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    item_kind: ItemKind
    provider: str = Field(default="", max_length=64, description="content provider (VAS)")
    channel: Channel
    price_vnd: int = Field(ge=0, le=10_000_000)
    period_days: int = Field(gt=0, le=366)
    needs_confirmation: bool
    confirm_by: AwareDatetime | None = None
    requested_at: AwareDatetime


class VasSubscribed(Envelope[VasSubscribedData]):
    EVENT_TYPE = "VasSubscribed"
    EVENT_VERSION = 1


class VasConfirmedData(EventData):
    """The subscription is active: confirmed in the app, or started where no consent is needed."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    how: Literal["in_app", "no_guard", "allow_listed", "loyalty"]
    confirmed_at: AwareDatetime


class VasConfirmed(Envelope[VasConfirmedData]):
    EVENT_TYPE = "VasConfirmed"
    EVENT_VERSION = 1


class VasChargedData(EventData):
    """Receipt: the account service took the fee (answer to `VasChargeRequested`)."""

    charge_id: str = Field(min_length=1, max_length=96)
    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    kind: ChargeKind
    amount_vnd: int = Field(ge=0, le=10_000_000)
    period_start: AwareDatetime
    period_end: AwareDatetime
    charged_at: AwareDatetime


class VasCharged(Envelope[VasChargedData]):
    EVENT_TYPE = "VasCharged"
    EVENT_VERSION = 1


class VasChargeFailedData(EventData):
    """Nothing was taken; the subscription is suspended until a later period is paid."""

    charge_id: str = Field(min_length=1, max_length=96)
    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    kind: ChargeKind
    amount_vnd: int = Field(ge=0, le=10_000_000)
    reason: Literal["insufficient_funds", "no_such_account", "monthly_cap_reached"]
    available_vnd: int | None = Field(default=None, ge=0)
    failed_at: AwareDatetime


class VasChargeFailed(Envelope[VasChargeFailedData]):
    EVENT_TYPE = "VasChargeFailed"
    EVENT_VERSION = 1


RenewalAction = Literal["renew", "skip", "cancel"]


class VasRenewalDueData(EventData):
    """Notice before an auto-renewal (notify turns it into a push with renew / skip / cancel)."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=100)
    period: int = Field(ge=0, description="the period the renewal pays for")
    amount_vnd: int = Field(ge=0, le=10_000_000)
    due_at: AwareDatetime
    actions: list[RenewalAction] = Field(default_factory=lambda: list(get_args(RenewalAction)))


class VasRenewalDue(Envelope[VasRenewalDueData]):
    EVENT_TYPE = "VasRenewalDue"
    EVENT_VERSION = 1


class VasRenewedData(EventData):
    """A renewal was paid: the subscription runs for another period."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    charge_id: str = Field(min_length=1, max_length=96)
    period: int = Field(ge=1)
    period_start: AwareDatetime
    period_end: AwareDatetime


class VasRenewed(Envelope[VasRenewedData]):
    EVENT_TYPE = "VasRenewed"
    EVENT_VERSION = 1


class VasRenewalSkippedData(EventData):
    """The subscriber skipped one period: it is not charged, the next one renews as usual."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    period: int = Field(ge=1)
    skipped_at: AwareDatetime


class VasRenewalSkipped(Envelope[VasRenewalSkippedData]):
    EVENT_TYPE = "VasRenewalSkipped"
    EVENT_VERSION = 1


class VasCancelledData(EventData):
    """No further charge; `refund_vnd` > 0 when the first charge is refunded (refund window)."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    channel: Channel
    reason: Literal["subscriber", "cancel_all", "auto_renew_off"] = "subscriber"
    refund_vnd: int = Field(default=0, ge=0, le=10_000_000)
    cancelled_at: AwareDatetime


class VasCancelled(Envelope[VasCancelledData]):
    EVENT_TYPE = "VasCancelled"
    EVENT_VERSION = 1


class VasRefundRequestedData(EventData):
    """Give back a charge (a subscription started outside the app and cancelled within the
    refund window). The account service credits `amount_vnd` once per `refund_id`."""

    refund_id: str = Field(min_length=1, max_length=100, description="<charge id>:refund")
    charge_id: str = Field(min_length=1, max_length=96)
    subscription_id: str = Field(min_length=1, max_length=64)
    amount_vnd: int = Field(gt=0, le=10_000_000)
    description: str = Field(default="", max_length=200)
    requested_at: AwareDatetime


class VasRefundRequested(Envelope[VasRefundRequestedData]):
    EVENT_TYPE = "VasRefundRequested"
    EVENT_VERSION = 1


class DataPackPurchasedData(EventData):
    """A data pack was paid (bought or renewed): its bucket is in the subscriber's balances."""

    subscription_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64)
    charge_id: str = Field(min_length=1, max_length=96)
    amount_vnd: int = Field(ge=0, le=10_000_000)
    bucket_id: str = Field(min_length=1, max_length=64)
    quota_kb: int = Field(gt=0, le=1_000_000_000)
    expires_at: AwareDatetime
    renewal: bool = False
    auto_renew: bool = True


class DataPackPurchased(Envelope[DataPackPurchasedData]):
    EVENT_TYPE = "DataPackPurchased"
    EVENT_VERSION = 1
