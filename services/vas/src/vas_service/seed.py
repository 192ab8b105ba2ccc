"""The catalogue (`vas-seed`, run by `make up`): services, packs and plans; idempotent (an
item already there is left as it is: an import may have changed it)."""

from __future__ import annotations

import asyncio

from servicekit.logs import configure_logging
from servicekit.mongo import Store

from .domain.catalog import DEMO_PACKS, DEMO_PLANS, DEMO_VAS, AnyItem, item_document, plan_document
from .settings import VasSettings
from .store import CATALOG, INDEXES, PLANS


async def seed(settings: VasSettings) -> tuple[int, int]:
    store = Store(settings.mongodb_url, settings.database_name, app_name="vas-seed")
    await store.connect()
    try:
        await store.ensure_indexes(INDEXES)
        every: list[AnyItem] = [*DEMO_VAS, *DEMO_PACKS]
        items = await store.insert_new(CATALOG, [item_document(i) for i in every])
        plans = await store.insert_new(PLANS, [plan_document(p) for p in DEMO_PLANS])
        return items, plans
    finally:
        await store.close()


def run() -> None:
    settings = VasSettings()
    configure_logging("vas-seed", settings.log_level)
    items, plans = asyncio.run(seed(settings))
    print(
        f"vas catalogue seeded: {items} new items ({len(DEMO_VAS)} services, "
        f"{len(DEMO_PACKS)} packs), {plans} new plans"
    )


if __name__ == "__main__":
    run()
