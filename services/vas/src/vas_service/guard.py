"""The subscriber's guard: block subscriptions started outside the app, allow some providers,
cap monthly spending. Changes are limited per subscriber (each is a consent-log entry), and a
guard set by a previous owner of the number does not apply to the next one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from servicekit import limits
from servicekit.limits import WindowLimiter
from servicekit.mongo import Doc, Store

from .budget import Budget
from .consent_log import ConsentLog
from .store import GUARDS

CHANGES_PER_DAY = 20


def no_guard() -> Doc:
    return {"block_external": False, "allowed_providers": [], "monthly_cap_vnd": None}


class Guards:
    def __init__(self, store: Store, log: ConsentLog, budget: Budget, limiter: WindowLimiter) -> None:
        self.store = store
        self.log = log
        self.budget = budget
        self.limiter = limiter

    async def get(self, msisdn: str, since: datetime | None) -> Doc:
        doc = await self.store[GUARDS].find_one({"_id": msisdn})
        if doc is None or (since is not None and doc.get("updated_at") and doc["updated_at"] < since):
            return no_guard()
        return {
            "block_external": bool(doc.get("block_external")),
            "allowed_providers": list(doc.get("allowed_providers", [])),
            "monthly_cap_vnd": doc.get("monthly_cap_vnd"),
        }

    async def capped(self, msisdn: str | None = None) -> dict[str, Doc]:
        """Guards with a cap (of one subscriber, or everyone's), by number."""
        query: dict[str, Any] = {"has_cap": True}
        if msisdn:
            query["_id"] = msisdn
        return {g["_id"]: g for g in await self.store[GUARDS].find(query).to_list()}

    async def set(self, msisdn: str, guard: Doc, now: datetime, since: datetime | None) -> Doc:
        await self.limiter.require(
            [limits.Budget(f"vas:guard-changes:{msisdn}", CHANGES_PER_DAY, 24 * 3600)],
            message=f"the guard can be changed {CHANGES_PER_DAY} times a day",
        )
        capped = guard.get("monthly_cap_vnd") is not None
        await self.store[GUARDS].replace_one(
            {"_id": msisdn}, {**guard, "has_cap": capped, "updated_at": now}, upsert=True
        )
        await self.log.append(
            msisdn, f"{msisdn}:guard:{uuid.uuid4().hex}", "guard_changed", "app", now, detail=guard
        )
        if capped:
            await self.budget.anchor(msisdn, since, now)
        return await self.get(msisdn, since)
