"""What a subscriber sees of their own services, derived per subscription.

Every read is bounded by subscription (its facts, its newest slots, their outcomes, its next
schedule entry) or by the current month, never by a window over the consent log: however
long the log grows, every subscription that can be charged is listed and can be cancelled.
Records of a previous tenancy of the number (before `owner_since`) are not shown.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Any

from servicekit.errors import not_found
from servicekit.mongo import Doc, Store
from servicekit.vntime import month_of

from .consent_log import ConsentLog
from .domain.subscriptions import RUNNING, Records, charge_id, derive
from .store import CHARGES, CONSENTS, SCHEDULE, SUBSCRIPTIONS, TENANCIES

NEWEST_SLOTS = 3


class Views:
    def __init__(self, store: Store, log: ConsentLog) -> None:
        self.store = store
        self.log = log

    async def tenancy(self, msisdn: str, told: datetime | None = None) -> datetime | None:
        """When the number's current owner's tenancy began (what the token says, or what the
        lifecycle events said, whichever is later); None when it never changed hands."""
        doc = await self.store[TENANCIES].find_one({"_id": msisdn})
        known = [t for t in (told, doc["owner_since"] if doc else None) if t is not None]
        return max(known) if known else None

    async def subscriptions(self, msisdn: str, since: datetime | None) -> list[Doc]:
        """The subscriber's subscriptions of the current tenancy, newest request first."""
        subs = await self.store[SUBSCRIPTIONS].find({"msisdn": msisdn}).to_list()
        mine = [s for s in subs if since is None or s["requested_at"] >= since]
        return sorted(mine, key=lambda s: s["requested_at"], reverse=True)

    async def hidden(self, msisdn: str, since: datetime | None) -> set[str]:
        if since is None:
            return set()
        subs = await self.store[SUBSCRIPTIONS].find({"msisdn": msisdn}, {"requested_at": 1}).to_list()
        return {s["_id"] for s in subs if s["requested_at"] < since}

    async def one(self, msisdn: str, subscription_id: str, since: datetime | None = None) -> Doc:
        """A subscription of the caller's; another's (or a previous owner's) is as good as absent."""
        sub = await self.store[SUBSCRIPTIONS].find_one({"_id": subscription_id})
        if sub is None or sub["msisdn"] != msisdn or (since is not None and sub["requested_at"] < since):
            raise not_found("subscription")
        return sub

    async def records(self, msisdn: str, subs: list[Doc], now: datetime) -> dict[str, Records]:
        month = month_of(now)
        facts, month_slots, month_entries = await asyncio.gather(
            self.log.facts(msisdn),
            self.store[CHARGES].find({"msisdn": msisdn, "month": month}).to_list(),
            self.log.month(msisdn, month),
        )
        by_sub: dict[str, dict[str, Doc]] = defaultdict(dict)
        for fact in facts:
            by_sub[str(fact.get("subscription_id"))].setdefault(fact["action"], fact)
        outcomes = _outcomes(month_entries)
        refunds: dict[str, int] = defaultdict(int)
        for entry in month_entries:
            if entry["action"] == "refunded":
                refunds[str(entry.get("subscription_id"))] += int(entry.get("amount_vnd", 0))
        slots_by_sub: dict[str, list[Doc]] = defaultdict(list)
        for slot in month_slots:
            slots_by_sub[slot["subscription_id"]].append(slot)
        live = [s for s in subs if "activated" in by_sub[s["_id"]] and "cancelled" not in by_sub[s["_id"]]]
        newest = await self.store.bounded_all(self._newest(s["_id"]) for s in live)
        chains = dict(zip((s["_id"] for s in live), newest, strict=True))
        await self._complete_outcomes(chains, outcomes)
        entries = await self._next_entries(chains)
        return {
            s["_id"]: Records(
                sub=s,
                activated=by_sub[s["_id"]].get("activated"),
                cancelled=by_sub[s["_id"]].get("cancelled"),
                refused=by_sub[s["_id"]].get("refused"),
                slots=chains.get(s["_id"], []),
                month_slots=slots_by_sub.get(s["_id"], []),
                outcomes=outcomes,
                refunded_vnd=refunds.get(s["_id"], 0),
                next_entry=entries.get(s["_id"]),
            )
            for s in subs
        }

    async def _newest(self, subscription_id: str) -> list[Doc]:
        query = self.store[CHARGES].find({"subscription_id": subscription_id})
        return await query.sort([("period", -1)]).limit(NEWEST_SLOTS).to_list()

    async def _complete_outcomes(self, chains: dict[str, list[Doc]], outcomes: dict[str, str]) -> None:
        """Outcomes of the newest slots that this month's entries do not hold (last month's)."""
        wanted = [s["_id"] for slots in chains.values() for s in slots[:1] if s["_id"] not in outcomes]
        ids = [f"{cid}:{what}" for cid in wanted for what in ("charged", "failed", "voided")]
        found = await self.store.find_by_ids(CONSENTS, ids) if ids else {}
        outcomes.update(_outcomes(found.values()))

    async def _next_entries(self, chains: dict[str, list[Doc]]) -> dict[str, Doc]:
        """Each live chain's next schedule entry (the slot after its newest), if scheduled."""
        ids = {
            sid: charge_id(sid, int(slots[0]["period"]) + 1 if slots else 1) for sid, slots in chains.items()
        }
        found = await self.store.find_by_ids(SCHEDULE, ids.values())
        return {sid: found[eid] for sid, eid in ids.items() if eid in found}

    def present(self, records: Records, now: datetime) -> Doc:
        sub = records.sub
        view = derive(records, now)
        return {
            "id": sub["_id"],
            "code": sub["code"],
            "name": sub["name"],
            "item_kind": sub["item_kind"],
            "provider": sub.get("provider", ""),
            "status": view.status,
            "reason": view.reason or None,
            "channel": sub["channel"],
            "price_vnd": sub["price_vnd"],
            "period_days": sub["period_days"],
            "auto_renew": view.auto_renew if view.status != "pending" else bool(sub.get("auto_renew", True)),
            "requested_at": sub["requested_at"],
            "confirm_by": sub.get("confirm_by") if view.status == "pending" else None,
            "started_at": view.started_at,
            "current_period_end": view.current_period_end,
            "next_renewal_at": view.next_renewal_at,
            "spent_this_month_vnd": view.spent_this_month_vnd,
        }

    async def presented(self, msisdn: str, now: datetime, since: datetime | None) -> list[tuple[Doc, Doc]]:
        """Every subscription of the current tenancy with its view, newest request first."""
        subs = await self.subscriptions(msisdn, since)
        records = await self.records(msisdn, subs, now)
        return [(s, self.present(records[s["_id"]], now)) for s in subs]

    async def listing(
        self, msisdn: str, now: datetime, since: datetime | None, everything: bool
    ) -> list[Doc]:
        return [
            v for _, v in await self.presented(msisdn, now, since) if everything or v["status"] in RUNNING
        ]

    async def running(self, msisdn: str, now: datetime, since: datetime | None) -> list[tuple[Doc, Doc]]:
        return [(s, v) for s, v in await self.presented(msisdn, now, since) if v["status"] in RUNNING]

    async def state(self, sub: Doc, now: datetime) -> Doc:
        return self.present((await self.records(sub["msisdn"], [sub], now))[sub["_id"]], now)

    async def month_spend(self, msisdn: str, since: datetime | None, now: datetime) -> int:
        """What VAS and packs cost the subscriber this month: charges asked for (or paid), not
        refused, less refunds; of the current tenancy."""
        month = month_of(now)
        slots, entries = await asyncio.gather(
            self.store[CHARGES].find({"msisdn": msisdn, "month": month}).to_list(),
            self.log.month(msisdn, month),
        )
        outcomes = _outcomes(entries)
        taken = sum(
            int(s["amount_vnd"])
            for s in slots
            if s["state"] == "requested"
            and outcomes.get(s["_id"]) not in ("failed", "void")
            and (since is None or s["at"] >= since)
        )
        refunded = sum(
            int(e.get("amount_vnd", 0))
            for e in entries
            if e["action"] == "refunded" and (since is None or e["at"] >= since)
        )
        return max(0, taken - refunded)


OUTCOMES = {"charged": "charged", "charge_failed": "failed", "charge_voided": "void"}


def _outcomes(entries: Any) -> dict[str, str]:
    """charge id -> charged | failed | void (a paid charge stays paid)."""
    found: dict[str, str] = {}
    for entry in entries:
        cid = entry.get("charge_id")
        if not cid or entry["action"] not in OUTCOMES:
            continue
        if found.get(cid) != "charged":
            found[cid] = OUTCOMES[entry["action"]]
    return found
