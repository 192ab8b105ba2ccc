"""Event handlers: parse-and-delegate only."""

from __future__ import annotations

from mobi_contracts import AnyEvent
from mobi_contracts.events.notify import PromotionPublished
from servicekit.kafka.consumer import BatchHandler
from servicekit.mongo import Store

from .projections import project
from .promotions import store_published
from .tenancy import TenancyEnds
from .transactional import Transactional


def notify_handler(store: Store, transactional: Transactional, tenancies: TenancyEnds) -> BatchHandler:
    async def on_events(events: list[AnyEvent]) -> None:
        promotions = [e for e in events if isinstance(e, PromotionPublished)]
        if promotions:
            await store_published(store, promotions)
        await project(store, events)
        # A tenancy's end first: no push of this batch reaches the previous owner's phone.
        await tenancies.apply(events)
        await transactional.handle(events)

    return on_events
