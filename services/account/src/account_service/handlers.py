"""Event handlers: the kit has parsed and deduplicated the batch; delegate to the ledger."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from servicekit.kafka.consumer import BatchHandler

from .ledger import LedgerService


def ledger_handler(ledger: LedgerService) -> BatchHandler:
    async def on_payment_and_usage_events(events: list[AnyEvent]) -> None:
        await ledger.apply(events)

    return on_payment_and_usage_events
