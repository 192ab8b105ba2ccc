"""Events of the loyalty programme (topic `loyalty.events.v1`) and the grant answers.

A redemption converts points into something another service owns: airtime and data are the
account service's, a VAS subscription is the VAS service's. Loyalty debits the points first
and publishes `PointsRedeemed`; the owning service grants the reward exactly once per
`redemption_id` and answers `RedemptionGranted` or `RedemptionRefused` on its own topic
(account on `account.events.v1`, vas on `vas.events.v1`). A refusal makes loyalty put the
points back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from ..envelope import Envelope, EventData
from ..msisdn import Msisdn

RewardKind = Literal["airtime", "data", "vas"]
Granter = Literal["account-service", "vas-service"]


class RedemptionReward(EventData):
    """What the points buy. Exactly the fields of its kind are set."""

    kind: RewardKind
    catalog_code: str = Field(min_length=1, max_length=64, description="redemption catalogue item")
    amount_vnd: int | None = Field(default=None, gt=0, le=10_000_000, description="airtime")
    data_kb: int | None = Field(default=None, gt=0, le=1_000_000_000, description="data bucket quota")
    validity_days: int | None = Field(default=None, gt=0, le=366, description="data bucket validity")
    vas_code: str | None = Field(default=None, min_length=1, max_length=64, description="VAS to activate")
    vas_days: int | None = Field(
        default=None, gt=0, le=366, description="VAS: days it runs free (absent: one period of the VAS)"
    )

    @model_validator(mode="after")
    def _fields_match_the_kind(self) -> RedemptionReward:
        wanted = {"airtime": ("amount_vnd",), "data": ("data_kb", "validity_days"), "vas": ("vas_code",)}
        every = ("amount_vnd", "data_kb", "validity_days", "vas_code")
        for name in every:
            if (getattr(self, name) is not None) != (name in wanted[self.kind]):
                raise ValueError(
                    f"a {self.kind} reward {'needs' if name in wanted[self.kind] else 'has no'} {name}"
                )
        if self.vas_days is not None and self.kind != "vas":
            raise ValueError(f"a {self.kind} reward has no vas_days")
        return self

    @property
    def granter(self) -> Granter:
        return "vas-service" if self.kind == "vas" else "account-service"


class PointsRedeemedData(EventData):
    """Points already taken from the member; the granter must grant `reward` once."""

    redemption_id: str = Field(min_length=1, max_length=64)
    points: int = Field(gt=0)
    reward: RedemptionReward
    redeemed_at: AwareDatetime


class PointsRedeemed(Envelope[PointsRedeemedData]):
    EVENT_TYPE = "PointsRedeemed"
    EVENT_VERSION = 1


class RedemptionGrantedData(EventData):
    redemption_id: str = Field(min_length=1, max_length=64)
    granter: Granter
    cause_event_id: str = Field(max_length=64, description="the PointsRedeemed event")
    granted_at: AwareDatetime
    description: str = Field(default="", max_length=200)


class RedemptionGranted(Envelope[RedemptionGrantedData]):
    EVENT_TYPE = "RedemptionGranted"
    EVENT_VERSION = 1


class RedemptionRefusedData(EventData):
    redemption_id: str = Field(min_length=1, max_length=64)
    granter: Granter
    cause_event_id: str = Field(max_length=64, description="the PointsRedeemed event")
    reason: Literal["no_such_subscriber", "not_eligible", "unknown_reward", "already_active", "other"]
    detail: str = Field(default="", max_length=200)
    refused_at: AwareDatetime


class RedemptionRefused(Envelope[RedemptionRefusedData]):
    EVENT_TYPE = "RedemptionRefused"
    EVENT_VERSION = 1


# --- the programme's own events (loyalty-service, topic `loyalty.events.v1`) ---
# Every change of a member's points is one ledger entry (`entry_id`, the change's business
# key); each event below names the entry it announces, so consumers dedupe by it.

Tier = Literal["member", "silver", "gold", "diamond"]
EarnSource = Literal["topup", "bill", "tenure", "welcome"]


class MemberEnrolledData(EventData):
    tier: Tier
    enrolled_at: AwareDatetime
    subscriber_since: AwareDatetime | None = Field(default=None, description="activation date, if known")


class MemberEnrolled(Envelope[MemberEnrolledData]):
    EVENT_TYPE = "MemberEnrolled"
    EVENT_VERSION = 1


class PointsEarnedData(EventData):
    entry_id: str = Field(min_length=1, max_length=128)
    source: EarnSource
    cause_id: str = Field(max_length=128, description="top-up id, bill id, month of tenure, …")
    points: int = Field(gt=0)
    balance_after: int = Field(ge=0)
    expires_on: AwareDatetime = Field(description="when these points expire")
    earned_at: AwareDatetime


class PointsEarned(Envelope[PointsEarnedData]):
    EVENT_TYPE = "PointsEarned"
    EVENT_VERSION = 1


class PointsTransferredData(EventData):
    """Published once the recipient (the event's subject, who is told) has the points."""

    transfer_id: str = Field(min_length=1, max_length=64)
    from_msisdn: Msisdn
    to_msisdn: Msisdn
    points: int = Field(gt=0)
    recipient_balance_after: int = Field(ge=0)
    transferred_at: AwareDatetime


class PointsTransferred(Envelope[PointsTransferredData]):
    EVENT_TYPE = "PointsTransferred"
    EVENT_VERSION = 1


class PointsExpiredData(EventData):
    entry_id: str = Field(min_length=1, max_length=128)
    points: int = Field(gt=0)
    expired_on: AwareDatetime = Field(description="the expiry date of the points taken")
    balance_after: int = Field(ge=0)


class PointsExpired(Envelope[PointsExpiredData]):
    EVENT_TYPE = "PointsExpired"
    EVENT_VERSION = 1


class PointsReversedData(EventData):
    """Points of a refused redemption put back (once per redemption)."""

    entry_id: str = Field(min_length=1, max_length=128)
    redemption_id: str = Field(min_length=1, max_length=64)
    points: int = Field(gt=0)
    reason: str = Field(max_length=200)
    balance_after: int = Field(ge=0)


class PointsReversed(Envelope[PointsReversedData]):
    EVENT_TYPE = "PointsReversed"
    EVENT_VERSION = 1


class TierChangedData(EventData):
    from_tier: Tier
    to_tier: Tier
    qualifying_points: int = Field(ge=0, description="points earned in the last 12 months")
    changed_at: AwareDatetime


class TierChanged(Envelope[TierChangedData]):
    EVENT_TYPE = "TierChanged"
    EVENT_VERSION = 1


class ECodeIssuedData(EventData):
    """A partner offer's E-code handed to the member (each code to exactly one member)."""

    offer_id: str = Field(min_length=1, max_length=64)
    partner: str = Field(max_length=100)
    code: str = Field(min_length=1, max_length=64)
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    issued_at: AwareDatetime


class ECodeIssued(Envelope[ECodeIssuedData]):
    """v1 carried the redeemable code itself on a topic kept for days: superseded by v2."""

    EVENT_TYPE = "ECodeIssued"
    EVENT_VERSION = 1


class ECodeIssuedV2Data(EventData):
    """A partner offer's E-code handed to the member. The code itself is redeemable, so it
    never travels on the bus: it stays in the loyalty service's store, and the member reads
    it in the app (`GET /api/v1/me/loyalty/ecodes`); the event names it by reference."""

    offer_id: str = Field(min_length=1, max_length=64)
    partner: str = Field(max_length=100)
    ecode_id: str = Field(min_length=1, max_length=96, description="reference to the code in loyalty's store")
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    issued_at: AwareDatetime


class ECodeIssuedV2(Envelope[ECodeIssuedV2Data]):
    EVENT_TYPE = "ECodeIssued"
    EVENT_VERSION = 2


class MemberCardRequestedData(EventData):
    request_id: str = Field(min_length=1, max_length=64)
    tier: Tier
    requested_at: AwareDatetime


class MemberCardRequested(Envelope[MemberCardRequestedData]):
    EVENT_TYPE = "MemberCardRequested"
    EVENT_VERSION = 1
