"""The catalogue of services, packs and plans: cached for reads, replaced by an import.

An import is refused when it would leave a loyalty reward pointing at a VAS that is not in
it (loyalty's redemption catalogue names VAS codes; a reward whose VAS is missing would take
a member's points for nothing): the loyalty service's published catalogue is checked first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import httpx

from servicekit.errors import ApiError, not_found, unavailable
from servicekit.mongo import Store

from .domain.catalog import AnyItem, Pack, Plan, Vas, item_document, parse_item, parse_plan, plan_document
from .store import CATALOG, PLANS

log = logging.getLogger(__name__)
CATALOG_TTL = 30.0


def missing_rewards(rewards: Iterable[dict[str, Any]], items: Iterable[AnyItem]) -> list[str]:
    """Loyalty rewards (their catalogue codes) whose VAS is not a service of `items`."""
    services = {i.code for i in items if isinstance(i, Vas)}
    return sorted(
        str(r["code"])
        for r in rewards
        if r.get("kind") == "vas" and (r.get("reward") or {}).get("vas_code") not in services
    )


class Catalog:
    def __init__(self, store: Store, loyalty_url: str | None = None) -> None:
        self.store = store
        self.loyalty_url = loyalty_url
        self._cache: tuple[float, dict[str, AnyItem]] = (0.0, {})

    async def items(self) -> dict[str, AnyItem]:
        """Items by code (kept for CATALOG_TTL seconds: the catalogue changes by import)."""
        loaded_at, items = self._cache
        if time.monotonic() - loaded_at > CATALOG_TTL or not items:
            docs = await self.store[CATALOG].find({}).to_list()
            items = {doc["_id"]: parse_item(doc) for doc in docs}
            self._cache = (time.monotonic(), items)
        return items

    async def item(self, code: str) -> AnyItem:
        found = (await self.items()).get(code)
        if found is None:
            raise not_found("service or pack")
        return found

    async def plans(self) -> list[Plan]:
        return [parse_plan(doc) for doc in await self.store[PLANS].find({}).to_list()]

    async def replace(self, vas: list[Vas], packs: list[Pack], plans: list[Plan]) -> None:
        every: list[AnyItem] = [*vas, *packs]
        codes = [i.code for i in every]
        if len(set(codes)) != len(codes):
            raise ApiError(422, "duplicate_code", "codes must be unique across services and packs")
        missing = missing_rewards(await self._loyalty_rewards(), every)
        if missing:
            raise ApiError(
                422,
                "reward_without_service",
                f"loyalty rewards {', '.join(missing)} grant a VAS this catalogue does not have",
            )
        await self.store.delete_where(CATALOG, {})
        await self.store.insert_all(CATALOG, [item_document(i) for i in every])
        if plans:
            await self.store.delete_where(PLANS, {})
            await self.store.insert_all(PLANS, [plan_document(p) for p in plans])
        self._cache = (0.0, {})

    async def _loyalty_rewards(self) -> list[dict[str, Any]]:
        if not self.loyalty_url:
            return []
        try:
            async with httpx.AsyncClient(base_url=self.loyalty_url, timeout=5.0, trust_env=False) as http:
                response = await http.get("/api/v1/loyalty/catalogue")
                response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("loyalty catalogue unavailable", extra={"error": repr(exc)})
            raise unavailable("cannot check loyalty's rewards against the import; retry") from exc
        items: list[dict[str, Any]] = response.json().get("items", [])
        return items
