"""What every use case of a subscription's chain shares: its parts, and the two moves that
touch the chain (decide a slot, schedule the next one, put a stopper in the first free slot)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from mobi_contracts import Topic
from servicekit.errors import ApiError
from servicekit.mongo import Doc, Store

from .budget import Budget
from .charging import ChargeDesk
from .consent_log import ConsentLog
from .domain.slots import schedule_entry, slot_claim, template
from .domain.subscriptions import ChargeState, charge_id, next_origin, origin_of
from .guard import Guards
from .inflight import Completion, Inflight, NotYet
from .store import CHARGES, CONSENTS, HOLDS, SCHEDULE, SUBSCRIPTIONS
from .views import Views

STOP_ATTEMPTS = 10
log = logging.getLogger(__name__)


@dataclass
class Chains:
    store: Store
    log: ConsentLog
    desk: ChargeDesk
    views: Views
    inflight: Inflight
    budget: Budget
    guards: Guards
    topic: Topic
    confirm_window: timedelta = timedelta(minutes=15)
    refund_window: timedelta = timedelta(hours=48)
    notice_lead: timedelta = timedelta(hours=24)

    async def finish(self, marker: str, completion: Completion, ref: Doc) -> None:
        """Run a completion now; what it cannot finish (an outage, a crash) the resume pass does."""
        try:
            await completion(ref)
        except NotYet:
            return
        except Exception as exc:
            log.warning("completion left to the resume pass", extra={"marker": marker, "error": repr(exc)})
            return
        await self.inflight.close(marker)

    async def subscription(self, subscription_id: str) -> Doc:
        sub = await self.store[SUBSCRIPTIONS].find_one({"_id": subscription_id})
        if sub is None:
            raise ApiError(404, "not_found", "subscription not found")
        return sub

    async def newest(self, subscription_id: str, n: int = 1) -> list[Doc]:
        """The chain's newest slots, newest first."""
        query = self.store[CHARGES].find({"subscription_id": subscription_id})
        return await query.sort([("period", -1)]).limit(n).to_list()

    async def origin(self, sub: Doc, fallback: datetime) -> datetime:
        """Where the chain's windows start: when it was activated (`fallback` if it never was)."""
        activated = await self.store[CONSENTS].find_one({"_id": f"{sub['_id']}:activated"})
        if activated is None:
            return fallback
        found: datetime = activated.get("origin") or activated["at"]
        return found

    def entry(self, tmpl: Doc, period: int) -> Doc:
        return schedule_entry(tmpl, period, self.notice_lead)

    async def schedule_after(self, sub: Doc, slot: Doc) -> None:
        """Schedule the period after a decided slot, if the chain goes on after it."""
        if slot["state"] in ("requested", "skipped", "cap_reached") and sub.get("auto_renew", True):
            tmpl = template(sub, origin_of(slot, int(sub["period_days"])))
            await self.store.insert_new(SCHEDULE, [self.entry(tmpl, int(slot["period"]) + 1)])

    async def stop(self, sub: Doc, state: ChargeState, now: datetime) -> Doc:
        """Put a stopper (`cancelled`, `renewal_off`) in the chain's first free slot and return
        the chain's last slot. Nothing after a stopper is ever scheduled, so no period after it
        can be charged, whatever is deciding a slot at this moment: a renewal or skip that
        claimed the slot first makes this claim the next one instead."""
        sid = sub["_id"]
        for _ in range(STOP_ATTEMPTS):
            newest = await self.newest(sid)
            last = newest[0] if newest else None
            if last is not None and last["state"] == "cancelled":
                return last
            if last is not None and last["state"] == state == "renewal_off":
                entry = await self.store[SCHEDULE].find_one({"_id": charge_id(sid, int(last["period"]) + 1)})
                if entry is None:
                    return last
            origin = next_origin(last, await self.origin(sub, now), int(sub["period_days"]))
            period = int(last["period"]) + 1 if last else 0
            stopper = slot_claim(template(sub, origin), period, now, "", state)
            if await self.desk.claim([stopper]):
                return stopper
        raise ApiError(409, "busy", "this subscription is changing; retry")

    async def settle(self, sub: Doc, stopper: Doc) -> list[Doc]:
        """After a stopper: charges of earlier slots not on their way are voided (their share of
        the cap given back), those on their way are published now. The slots voided."""
        slots = [s for s in await self.newest(sub["_id"], 4) if s["period"] < stopper["period"]]
        ids = [f"{s['_id']}:{what}" for s in slots for what in ("charged", "failed")]
        answered = {doc["charge_id"] for doc in (await self.store.find_by_ids(CONSENTS, ids)).values()}
        voided = await self.desk.settle_unsent(slots, answered)
        await self.store.insert_new(CONSENTS, [voided_entry(slot) for slot in voided])
        for slot in voided:
            await self.budget.release(sub["msisdn"], slot["_id"])
        return voided

    async def clear(self, sub: Doc) -> None:
        """Housekeeping once a chain has stopped (its stopper already prevents every charge)."""
        await self.store.delete_where(SCHEDULE, {"subscription_id": sub["_id"]})
        await self.store[HOLDS].delete_one(
            {"_id": f"{sub['msisdn']}:{sub['code']}", "subscription_id": sub["_id"]}
        )


def voided_entry(slot: Doc) -> Doc:
    """The consent-log record of a charge a stop voided before it went out (never charged)."""
    return {
        "_id": f"{slot['_id']}:voided",
        "msisdn": slot["msisdn"],
        "subscription_id": slot["subscription_id"],
        "code": slot["code"],
        "action": "charge_voided",
        "channel": "system",
        "charge_id": slot["_id"],
        "period": slot["period"],
        "amount_vnd": slot["amount_vnd"],
        "month": slot.get("month"),
        "at": slot["at"],
    }
