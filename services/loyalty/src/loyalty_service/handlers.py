"""Event handlers: the kit has parsed and deduplicated the batch; delegate to the programme."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from mobi_contracts.topics import TENANCY_ENDED_EVENTS
from servicekit.kafka.consumer import BatchHandler

from .programme import Programme
from .redemptions import Redemptions
from .tenancy import MembershipEnds


def loyalty_handler(programme: Programme, redemptions: Redemptions, ends: MembershipEnds) -> BatchHandler:
    async def on_payments_and_grants(events: list[AnyEvent]) -> None:
        earning = [e for e in events if isinstance(e, TopupRecorded | BillPaid)]
        answers = [e for e in events if isinstance(e, RedemptionGranted | RedemptionRefused)]
        ended = [e for e in events if isinstance(e, TENANCY_ENDED_EVENTS)]
        applied = await programme.earn_from(earning) if earning else []
        if answers:
            applied += await redemptions.on_answers(answers)
        # Published before the batch is committed; a redelivery publishes the stored ones again.
        await programme.ledger.publish_entries(applied)
        if ended:  # after the earnings of the same batch: they close with the membership
            await ends.apply(ended)

    return on_payments_and_grants
