"""Event handlers: the kit has parsed and deduplicated the batch; delegate."""

from __future__ import annotations

from datetime import UTC, datetime

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import PointsRedeemed
from mobi_contracts.events.subscriber import SubscriberOwnerChanged
from mobi_contracts.topics import TENANCY_ENDED_EVENTS
from servicekit.kafka.consumer import BatchHandler

from .answers import Answers
from .redemptions import Redemptions
from .stopping import Stopping


def vas_handler(answers: Answers, redemptions: Redemptions, stopping: Stopping) -> BatchHandler:
    async def on_batch(events: list[AnyEvent]) -> None:
        await answers.on_answers(events)
        redeemed = [e for e in events if isinstance(e, PointsRedeemed) and e.data.reward.kind == "vas"]
        if redeemed:
            await redemptions.grant(redeemed, datetime.now(UTC))
        for event in events:
            if isinstance(event, TENANCY_ENDED_EVENTS):
                # The number changed hands: the previous owner's subscriptions end; terminated or
                # ported out: every subscription of the number does.
                since = event.data.owner_since if isinstance(event, SubscriberOwnerChanged) else None
                await stopping.end_tenancy(event.subject, since, event.data.changed_at)

    return on_batch
