"""Event handlers: the kit has parsed and deduplicated the batch; delegate to the programme."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import RedemptionGranted, RedemptionRefused
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from servicekit.kafka.consumer import BatchHandler

from .programme import Programme


def loyalty_handler(programme: Programme) -> BatchHandler:
    async def on_payments_and_grants(events: list[AnyEvent]) -> None:
        earning = [e for e in events if isinstance(e, TopupRecorded | BillPaid)]
        answers = [e for e in events if isinstance(e, RedemptionGranted | RedemptionRefused)]
        applied = await programme.earn_from(earning) if earning else []
        if answers:
            applied += await programme.on_answers(answers)
        # Published before the batch is committed; a redelivery publishes the stored ones again.
        await programme.ledger.publish_entries(applied)

    return on_payments_and_grants
