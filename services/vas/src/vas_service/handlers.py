"""Event handlers: the kit has parsed and deduplicated the batch; delegate."""

from __future__ import annotations

from datetime import UTC, datetime

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import PointsRedeemed
from servicekit.kafka.consumer import BatchHandler

from .charging import ChargeDesk
from .subscriptions import VasService


def vas_handler(desk: ChargeDesk, vas: VasService) -> BatchHandler:
    async def on_answers_and_redemptions(events: list[AnyEvent]) -> None:
        await desk.on_answers(events)
        redemptions = [e for e in events if isinstance(e, PointsRedeemed) and e.data.reward.kind == "vas"]
        if redemptions:
            await vas.grant_redemptions(redemptions, datetime.now(UTC))

    return on_answers_and_redemptions
