"""Loyalty redemptions of a VAS: the VAS runs free for the reward's days (`vas_days`, else one
period of the VAS), never renewed and never charged; loyalty gets one answer per redemption
(`RedemptionGranted` / `RedemptionRefused`, stored with the decision as its outbox), so a
refusal gives the member's points back and a redelivery answers nothing twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    RedemptionGranted,
    RedemptionGrantedData,
    RedemptionRefused,
    RedemptionRefusedData,
)
from servicekit.errors import ApiError
from servicekit.kafka.errors import TransientError

from .catalog import Catalog
from .chains import Chains
from .charging import PRODUCER
from .domain.catalog import Vas
from .domain.subscriptions import event_id_for, subscription_id_for
from .lifecycle import Lifecycle

Refusal = Literal["unknown_reward", "already_active"]


class Redemptions:
    def __init__(self, chains: Chains, catalog: Catalog, lifecycle: Lifecycle) -> None:
        self.c = chains
        self.catalog = catalog
        self.lifecycle = lifecycle

    async def grant(self, events: list[PointsRedeemed], now: datetime) -> None:
        for event in events:
            reward = event.data.reward
            if reward.kind != "vas" or reward.vas_code is None:
                continue
            sid = subscription_id_for("loyalty", event.data.redemption_id)
            answer_id = f"{sid}:redemption"
            existing = await self.c.log.get(answer_id)
            if existing is None:
                answer = await self._decide(event, reward.vas_code, reward.vas_days, sid, now)
                if await self.c.log.append(
                    event.subject,
                    answer_id,
                    "redemption_answered",
                    "loyalty",
                    now,
                    sub={"_id": sid, "code": reward.vas_code},
                    events=[answer],
                ):
                    continue  # recorded here, and relayed
                existing = await self.c.log.get(answer_id)  # another delivery recorded it first
            if existing is not None and existing.get("outbox"):
                await self.c.log.relay.relay(existing)

    async def _decide(
        self, event: PointsRedeemed, code: str, days: int | None, sid: str, now: datetime
    ) -> AnyEvent:
        common: dict[str, Any] = {
            "subject": event.subject,
            "producer": PRODUCER,
            "correlation_id": event.correlation_id,
            "causation_id": str(event.event_id),
            "event_id": event_id_for(sid, "redemption"),
        }
        answering: dict[str, Any] = {
            "redemption_id": event.data.redemption_id,
            "granter": "vas-service",
            "cause_event_id": str(event.event_id),
        }
        item = (await self.catalog.items()).get(code)
        if not isinstance(item, Vas):
            return _refused(common, answering, "unknown_reward", code, now)
        since = await self.c.views.tenancy(event.subject)
        try:
            sub, _ = await self.lifecycle.request(
                event.subject,
                item,
                "loyalty",
                sid,
                now,
                event.correlation_id,
                needs_confirmation=False,
                since=since,
                request_ref=event.data.redemption_id,
                period_days=days,
            )
            await self.lifecycle.activate(sub, "loyalty", now, event.correlation_id, since)
        except ApiError as exc:
            if exc.code == "already_subscribed":
                return _refused(common, answering, "already_active", code, now)
            raise TransientError(exc.message) from exc  # busy: the batch is tried again
        period = days or item.period_days
        return RedemptionGranted.new(
            **common,
            data=RedemptionGrantedData(
                **answering, granted_at=now, description=f"{item.name_vi}, {period} ngày miễn phí"[:200]
            ),
        )


def _refused(
    common: dict[str, Any], answering: dict[str, Any], reason: Refusal, code: str, now: datetime
) -> AnyEvent:
    return RedemptionRefused.new(
        **common, data=RedemptionRefusedData(**answering, reason=reason, detail=f"VAS {code}", refused_at=now)
    )
