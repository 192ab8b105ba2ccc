"""Event handlers: the kit has parsed and deduplicated the batch (top-ups, bills paid, usage,
VAS charges and refunds, plan changes, points redeemed); the ledger decides them."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from mobi_contracts.topics import TENANCY_ENDED_EVENTS
from servicekit.kafka.consumer import BatchHandler

from .ledger import LedgerService


def ledger_handler(ledger: LedgerService) -> BatchHandler:
    async def on_balance_events(events: list[AnyEvent]) -> None:
        # Lifecycle events: the previous tenancy's balances are not inherited (TODO: forfeit).
        await ledger.apply([e for e in events if not isinstance(e, TENANCY_ENDED_EVENTS)])

    return on_balance_events
