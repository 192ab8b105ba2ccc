"""Read side: what the app shows a subscriber. Every query is scoped to the caller's number,
and every history to the caller's tenancy (records made before the number's current owner got
it are a previous owner's; servicekit.tenancy)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from servicekit.auth import Caller
from servicekit.cache import VersionedCache
from servicekit.errors import not_found
from servicekit.mongo import Store
from servicekit.tenancy import of_tenancy, since_filter

from .balance_state import cache_entry, current_account, parse_cached, rendered
from .domain.balances import from_document
from .domain.paging import NEWEST_FIRST, Cursor, older_than
from .store import BILLS, CHARGES, SUBSCRIBERS, TOPUPS

Page = tuple[list[dict[str, Any]], str | None]


class AccountQueries:
    def __init__(self, store: Store, cache: VersionedCache | None = None) -> None:
        self.store = store
        self.cache = cache

    async def profile(self, msisdn: str) -> dict[str, Any]:
        doc = await self.store[SUBSCRIBERS].find_one({"_id": msisdn})
        if doc is None:
            raise not_found("subscriber")
        return doc

    async def _balance_document(
        self, msisdn: str, prefetched: Mapping[str, bytes | None]
    ) -> dict[str, Any] | None:
        """The current balances: from the read cache (the ledger consumer puts every touched
        subscriber's state there before it commits its batch; in `prefetched` when the caller
        fetched it with the session check), else from the store (the snapshot rolled forward
        to the journal's newest decision: balance_state), filling the cache."""
        if self.cache is not None:
            key = self.cache.redis_key(msisdn)
            cached = prefetched[key] if key in prefetched else await self.cache.get_raw(msisdn)
            hit = VersionedCache.parse(cached)
            if hit is not None:
                return parse_cached(hit[1])
        account = await current_account(self.store, msisdn)
        if account is None:
            return None
        if self.cache is not None:
            await self.cache.put(*cache_entry(account))
        return rendered(account)

    def balance_cache_keys(self, msisdn: str) -> list[str]:
        """For `caller_prefetching`: the cached balances come with the session check."""
        return [self.cache.redis_key(msisdn)] if self.cache is not None else []

    async def balances(
        self, msisdn: str, prefetched: Mapping[str, bytes | None] | None = None
    ) -> dict[str, Any]:
        doc = await self._balance_document(msisdn, prefetched or {})
        if doc is None:
            subscriber = await self.profile(msisdn)  # a known number with nothing credited yet
            doc = {"_id": msisdn, "plan": subscriber.get("plan", "prepaid")}
        state = from_document(doc)
        now = datetime.now(UTC)
        return {
            "msisdn": msisdn,
            "plan": state.plan,
            "plan_code": state.plan_code,  # the tariff plan, once PlanChanged recorded one
            "main": {"balance_vnd": state.main},
            "unbilled_vnd": state.unbilled if state.plan == "postpaid" else None,
            "promotions": [
                {"id": p.id, "name": p.name, "balance_vnd": p.balance, "expires_at": p.expires_at}
                for p in state.live_promos(now)
            ],
            "data": [
                {
                    "id": d.id,
                    "name": d.name,
                    "remaining_mb": round(d.remaining_kb / 1024, 1),
                    "total_mb": round(d.total_kb / 1024, 1),
                    "expires_at": d.expires_at,
                }
                for d in state.live_data(now)
            ],
            "voice": [
                {
                    "id": a.id,
                    "name": a.name,
                    "remaining_minutes": round(a.remaining / 60, 1),
                    "total_minutes": round(a.total / 60, 1),
                    "expires_at": a.expires_at,
                }
                for a in state.live_allowances("voice", now)
            ],
            "sms": [
                {
                    "id": a.id,
                    "name": a.name,
                    "remaining": a.remaining,
                    "total": a.total,
                    "expires_at": a.expires_at,
                }
                for a in state.live_allowances("sms", now)
            ],
            "as_of": doc.get("updated_at", now),
        }

    async def history(
        self, collection: str, caller: Caller, cursor: Cursor | None, limit: int, **filters: Any
    ) -> Page:
        query = {
            "msisdn": caller.msisdn,
            **filters,
            **since_filter("at", caller.owner_since),
            **older_than(cursor),
        }
        rows = await self.store[collection].find(query).sort(NEWEST_FIRST).limit(limit + 1).to_list()
        page = rows[:limit]
        more = len(rows) > limit
        next_cursor = Cursor(at=page[-1]["at"], id=str(page[-1]["_id"])).encode() if more and page else None
        return page, next_cursor

    async def charges(self, caller: Caller, cursor: Cursor | None, limit: int, kind: str | None) -> Page:
        filters = {"kind": kind} if kind else {}
        return await self.history(CHARGES, caller, cursor, limit, **filters)

    async def topups(self, caller: Caller, cursor: Cursor | None, limit: int) -> Page:
        return await self.history(TOPUPS, caller, cursor, limit)

    async def bills(self, caller: Caller, status: str | None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"msisdn": caller.msisdn}
        if status:
            query["status"] = status
        bills = await self.store[BILLS].find(query).sort([("period", -1)]).limit(24).to_list()
        return [b for b in bills if of_tenancy(issued_at(b), caller.owner_since)]


def issued_at(bill: dict[str, Any]) -> datetime | None:
    """When a bill was issued; for bills recorded before that was kept, its period's start."""
    if isinstance(bill.get("issued_at"), datetime):
        at: datetime = bill["issued_at"]
        return at
    try:
        return datetime.strptime(f"{bill['period']}-01", "%Y-%m-%d").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        return None
