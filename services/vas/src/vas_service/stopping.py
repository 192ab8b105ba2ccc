"""Stopping charges: cancel, auto-renew off (and on again), the end of a tenancy.

Cancellation and auto-renew-off are facts about the subscription's chain, never a time
window: a stopper in the first free slot (chains.Chains.stop), so nothing after it is ever
scheduled or charged. Each use case is a claim and an idempotent completion:

- cancel: the claim is the `cancelled` entry (with `VasCancelled`); its completion puts the
  stopper, voids the charges not on their way and publishes those that are (so none is
  published after the answer), clears the schedule and the hold, and refunds the first charge
  of an outside start cancelled within the window once it is known to be paid (a refund claim
  per charge);
- auto-renew off: the claim is the `renewal_off` stopper; the pack runs to the end of its
  period. Turned on again before then, the next slot takes the window the stopper left;
- the end of a tenancy (the number changed hands, was terminated or ported out): every
  subscription of the tenancy that ended is cancelled as above, with no refund and no push
  (the next owner must hear nothing of them); replays find every claim taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from mobi_contracts.events.vas import (
    Channel,
    VasCancelled,
    VasCancelledData,
    VasRefundRequested,
    VasRefundRequestedData,
)
from servicekit.errors import ApiError
from servicekit.mongo import Doc

from .chains import Chains
from .charging import PRODUCER
from .domain.slots import template
from .domain.subscriptions import charge_id, event_id_for, next_origin, refund_due
from .inflight import NotYet, abandoned
from .store import CHARGES, GUARDS, SCHEDULE, SUBSCRIPTIONS, TENANCIES

Reason = Literal["subscriber", "cancel_all", "auto_renew_off"]


class Stopping:
    def __init__(self, chains: Chains) -> None:
        self.c = chains

    # -- cancel ---------------------------------------------------------------------------------

    async def cancel(
        self,
        sub: Doc,
        now: datetime,
        correlation_id: str,
        channel: Channel = "app",
        reason: Reason = "subscriber",
    ) -> Doc:
        """No charge after the answer: the cancellation is recorded, then completed (a charge on
        its way is published before the answer; a failure to do so is an error, and the
        cancellation stands and is completed by the resume pass)."""
        sid = sub["_id"]
        marker = f"{sid}:cancel"
        await self.c.inflight.open(marker, "cancel", subscription_id=sid)
        activated = await self.c.log.get(f"{sid}:activated")
        started = activated["at"] if activated else None
        refund = int(sub["price_vnd"]) if refund_due(sub, started, now, self.c.refund_window) else 0
        event = VasCancelled.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=correlation_id or sid,
            event_id=event_id_for(sid, "cancelled"),
            data=VasCancelledData(
                subscription_id=sid,
                code=sub["code"],
                channel=channel,
                reason=reason,
                refund_vnd=refund,
                cancelled_at=now,
            ),
        )
        await self.c.log.append(
            sub["msisdn"],
            f"{sid}:cancelled",
            "cancelled",
            channel,
            now,
            sub=sub,
            events=[event],
            reason=reason,
            refund_vnd=refund or None,
        )
        try:
            await self.complete_cancel({"subscription_id": sid, "at": now})
            await self.c.inflight.close(marker)
        except NotYet:
            pass  # the refund waits for the first charge's answer
        return await self.c.views.state(sub, now)

    async def complete_cancel(self, marker: Doc) -> None:
        sid = marker["subscription_id"]
        cancelled = await self.c.log.get(f"{sid}:cancelled")
        if cancelled is None:
            if abandoned(marker):
                return
            raise NotYet(sid)
        if cancelled.get("outbox"):
            await self.c.log.relay_now(cancelled)
        sub = await self.c.subscription(sid)
        stopper = await self.c.stop(sub, "cancelled", cancelled["at"])
        await self.c.settle(sub, stopper)
        await self.c.clear(sub)
        if cancelled.get("refund_vnd"):
            await self._refund_first(sub, cancelled)

    async def _refund_first(self, sub: Doc, cancelled: Doc) -> None:
        """Give back the first charge once it is known to be paid (a claim per charge)."""
        first = charge_id(sub["_id"], 0)
        charged = await self.c.log.get(f"{first}:charged")
        if charged is None:
            voided = (await self.c.desk.tickets([first])).get(first) == "void"
            failed = await self.c.log.get(f"{first}:failed")
            if (
                voided
                or failed is not None
                or await self.c.store[CHARGES].find_one({"_id": first, "state": "requested"}) is None
            ):
                return  # nothing was taken: nothing to give back
            raise NotYet(first)
        amount = int(charged["amount_vnd"])
        event = VasRefundRequested.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=sub["_id"],
            event_id=event_id_for(sub["_id"], "refund"),
            data=VasRefundRequestedData(
                refund_id=f"{first}:refund",
                charge_id=first,
                subscription_id=sub["_id"],
                amount_vnd=amount,
                description=f"Hoàn tiền {sub['code']}: hủy trong thời hạn",
                requested_at=cancelled["at"],
            ),
        )
        await self.c.log.append(
            sub["msisdn"],
            f"{first}:refunded",
            "refunded",
            "system",
            cancelled["at"],
            sub=sub,
            events=[event],
            charge_id=first,
            amount_vnd=amount,
            month=charged.get("month"),
        )
        await self.c.budget.release(sub["msisdn"], first)

    async def refuse(self, sub: Doc, now: datetime, reason: str) -> None:
        """An outside request refused after it was recorded (the monthly cap): it never starts."""
        await self.c.log.append(
            sub["msisdn"], f"{sub['_id']}:refused", "refused", sub["channel"], now, sub=sub, reason=reason
        )
        await self.c.clear(sub)

    # -- auto-renew -----------------------------------------------------------------------------

    async def renewal_off(self, sub: Doc, now: datetime) -> None:
        marker = f"{sub['_id']}:renewal_off"
        await self.c.inflight.open(marker, "renewal_off", subscription_id=sub["_id"])
        await self.complete_renewal_off({"subscription_id": sub["_id"], "at": now})
        await self.c.inflight.close(marker)

    async def complete_renewal_off(self, marker: Doc) -> None:
        sub = await self.c.subscription(marker["subscription_id"])
        stopper = await self.c.stop(sub, "renewal_off", marker["at"])
        if stopper["state"] != "renewal_off":
            return  # cancelled meanwhile: the cancellation completes the rest
        await self.c.settle(sub, stopper)
        await self.c.log.append(
            sub["msisdn"],
            f"{stopper['_id']}:auto_renew_off",
            "auto_renew_off",
            "app",
            stopper["at"],
            sub=sub,
            period=stopper["period"],
        )

    async def renewal_on(self, sub: Doc, now: datetime) -> None:
        """Renew again from the end of the current period: the slot after the stopper takes
        the window the stopper left unused."""
        sid = sub["_id"]
        newest = await self.c.newest(sid, 3)
        last = newest[0] if newest else None
        if last is None or last["state"] != "renewal_off":
            return  # renews already
        if await self.c.log.get(f"{sid}:cancelled") is not None:
            raise ApiError(409, "cancelled", "this subscription was cancelled")
        ends = max(
            (s["period_end"] for s in newest if s["state"] in ("requested", "free", "skipped")), default=now
        )
        if ends <= now:
            raise ApiError(409, "ended", "this pack has ended; buy it again")
        origin = next_origin(last, await self.c.origin(sub, now), int(sub["period_days"]))
        period = int(last["period"]) + 1
        await self.c.store.insert_new(SCHEDULE, [self.c.entry(template(sub, origin), period)])
        await self.c.log.append(
            sub["msisdn"],
            f"{charge_id(sid, period)}:auto_renew_on",
            "auto_renew_on",
            "app",
            now,
            sub=sub,
            period=period,
        )

    # -- the end of a tenancy -------------------------------------------------------------------

    async def end_tenancy(self, msisdn: str, owner_since: datetime | None, at: datetime) -> int:
        """End every subscription of the tenancy that ended: requested before `owner_since` (the
        number changed hands), or all of them (`owner_since` None: terminated, ported out)."""
        if owner_since is not None:
            await self._remember_tenancy(msisdn, owner_since)
        subs = await self.c.store[SUBSCRIPTIONS].find({"msisdn": msisdn}).to_list()
        ended = [s for s in subs if owner_since is None or s["requested_at"] < owner_since]
        count = 0
        for sub in ended:
            if await self.c.log.append(
                msisdn, f"{sub['_id']}:cancelled", "cancelled", "system", at, sub=sub, reason="tenancy_ended"
            ):
                count += 1
            stopper = await self.c.stop(sub, "cancelled", at)
            await self.c.settle(sub, stopper)
            await self.c.clear(sub)
        query: dict[str, Any] = {"_id": msisdn}
        if owner_since is not None:
            query["updated_at"] = {"$lt": owner_since}
        await self.c.store[GUARDS].delete_one(query)
        return count

    async def _remember_tenancy(self, msisdn: str, owner_since: datetime) -> None:
        """One writer per number (its lifecycle events come in order on one partition)."""
        known = await self.c.store[TENANCIES].find_one({"_id": msisdn})
        if known is None or known["owner_since"] < owner_since:
            await self.c.store[TENANCIES].replace_one(
                {"_id": msisdn}, {"owner_since": owner_since}, upsert=True
            )
