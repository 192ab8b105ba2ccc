"""Event handlers: parse-and-delegate only."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from servicekit.kafka.consumer import BatchHandler

from .tenancy import TenancyEnds


def stores_handler(tenancies: TenancyEnds) -> BatchHandler:
    async def on_lifecycle(events: list[AnyEvent]) -> None:
        await tenancies.apply(events)

    return on_lifecycle
