"""Event handlers: the kit has parsed and deduplicated the batch (top-ups, bills paid, usage,
VAS charges and refunds, plan changes, points redeemed, tenancies ended); the ledger decides them."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from servicekit.kafka.consumer import BatchHandler

from .ledger import LedgerService


def ledger_handler(ledger: LedgerService) -> BatchHandler:
    async def on_balance_events(events: list[AnyEvent]) -> None:
        await ledger.apply(events)

    return on_balance_events
