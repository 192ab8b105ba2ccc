"""Event handlers: the account service confirms credits; remember which top-ups landed."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from mobi_contracts.events.account import BalanceChanged
from servicekit.kafka.consumer import BatchHandler
from servicekit.mongo import Store

from .store import CREDITS


def credits_handler(store: Store) -> BatchHandler:
    async def on_balance_changes(events: list[AnyEvent]) -> None:
        credits = [
            {
                "_id": e.data.cause_event_id,
                "msisdn": e.subject,
                "amount_vnd": e.data.delta,
                "at": e.occurred_at,
            }
            for e in events
            if isinstance(e, BalanceChanged)
            and e.data.cause_event_type == "TopupRecorded"
            and e.data.account == "main"
        ]
        await store.insert_new(CREDITS, credits)

    return on_balance_changes
