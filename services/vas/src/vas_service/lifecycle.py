"""Starting a subscription and living with it: request, activate, skip a renewal.

Each use case is one claim and an idempotent completion (see inflight.py):

- request: the subscription document and its hold on (subscriber, code) (one pending or
  running subscription of a code at a time), then the `requested` entry with `VasSubscribed`;
  nothing is promised yet, so a request that fails half way is simply never confirmed;
- activate: the claim is the `activated` entry (with `VasConfirmed`); its completion decides
  slot 0 (charged, or free for a loyalty gift), publishes the charge under its ticket and
  schedules period 1: a subscription is never active without its charge and its renewal;
- skip: the claim is the skipped slot; its completion records `VasRenewalSkipped` and
  schedules the period after.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from mobi_contracts.events.vas import (
    Channel,
    VasConfirmed,
    VasConfirmedData,
    VasRenewalSkipped,
    VasRenewalSkippedData,
    VasSubscribed,
    VasSubscribedData,
)
from servicekit.errors import ApiError
from servicekit.mongo import Doc

from .chains import Chains
from .charging import PRODUCER
from .domain.catalog import AnyItem
from .domain.slots import slot_claim, template
from .domain.subscriptions import RUNNING, ChargeState, charge_id, event_id_for, may_skip
from .inflight import NotYet, abandoned
from .store import CHARGES, HOLDS, SCHEDULE, SUBSCRIPTIONS

How = Literal["in_app", "no_guard", "allow_listed", "loyalty"]
HOLD_GRACE_SECONDS = 60  # a hold whose subscription is not written yet: a request in progress


class Lifecycle:
    def __init__(self, chains: Chains) -> None:
        self.c = chains

    # -- request --------------------------------------------------------------------------------

    async def request(
        self,
        msisdn: str,
        item: AnyItem,
        channel: Channel,
        sid: str,
        now: datetime,
        correlation_id: str,
        *,
        needs_confirmation: bool,
        since: datetime | None,
        auto_renew: bool = True,
        request_ref: str = "",
        period_days: int | None = None,
    ) -> tuple[Doc, bool]:
        """The subscription this request names (made now, or by an earlier try of it) and
        whether it is new."""
        existing = await self.c.store[SUBSCRIPTIONS].find_one({"_id": sid})
        if existing is None:
            await self._take_hold(msisdn, item.code, sid, now, since)
            sub = {
                "_id": sid,
                "msisdn": msisdn,
                "code": item.code,
                "name": item.name_vi,
                "item_kind": item.item_kind,
                "provider": item.provider,
                "price_vnd": item.price_vnd,
                "period_days": period_days or item.period_days,
                "grants": item.grants(),
                "auto_renew": auto_renew and channel != "loyalty",
                "channel": channel,
                "needs_confirmation": needs_confirmation,
                # Unconfirmed (or never activated, when no consent is needed), it expires.
                "confirm_by": now + self.c.confirm_window,
                "request_ref": request_ref,
                "correlation_id": correlation_id or sid,
                "requested_at": now,
            }
            if await self.c.store.claim(SUBSCRIPTIONS, sid, **{k: v for k, v in sub.items() if k != "_id"}):
                await self._log_request(sub)
                return sub, True
            existing = await self.c.store[SUBSCRIPTIONS].find_one({"_id": sid})
        if existing is None or existing["msisdn"] != msisdn:
            raise ApiError(409, "request_ref_reused", "this request reference names another number's request")
        await self._log_request(existing)  # a retry completes what the first try left out
        return existing, False

    async def _log_request(self, sub: Doc) -> None:
        sid = sub["_id"]
        event = VasSubscribed.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=sub.get("correlation_id") or sid,
            event_id=event_id_for(sid, "subscribed"),
            occurred_at=sub["requested_at"],
            data=VasSubscribedData(
                subscription_id=sid,
                code=sub["code"],
                item_kind=sub["item_kind"],
                provider=sub.get("provider", ""),
                channel=sub["channel"],
                price_vnd=sub["price_vnd"],
                period_days=sub["period_days"],
                needs_confirmation=sub["needs_confirmation"],
                confirm_by=sub["confirm_by"] if sub["needs_confirmation"] else None,
                requested_at=sub["requested_at"],
            ),
        )
        ref = sub.get("request_ref")
        await self.c.log.append(
            sub["msisdn"],
            f"{sid}:requested",
            "requested",
            sub["channel"],
            sub["requested_at"],
            sub=sub,
            events=[event],
            provider=sub.get("provider"),
            detail={"request_ref": ref} if ref else None,
        )

    # -- holds ----------------------------------------------------------------------------------

    async def _take_hold(
        self, msisdn: str, code: str, sid: str, now: datetime, since: datetime | None
    ) -> None:
        """One pending or running subscription of a code per subscriber: a unique hold."""
        hold_id = f"{msisdn}:{code}"
        for _ in range(3):
            if await self.c.store.claim(HOLDS, hold_id, subscription_id=sid, at=now):
                return
            hold = await self.c.store[HOLDS].find_one({"_id": hold_id})
            if hold is None:
                continue
            holder = str(hold["subscription_id"])
            if holder == sid:
                return
            if await self._still_holds(hold, now, since):
                raise ApiError(
                    409,
                    "already_subscribed",
                    f"{code} is already requested or running on this number",
                    subscription_id=holder,
                )
            await self.c.store[HOLDS].delete_one({"_id": hold_id, "subscription_id": holder})
        raise ApiError(409, "busy", "another change of this service is in progress; retry")

    async def _still_holds(self, hold: Doc, now: datetime, since: datetime | None) -> bool:
        sub = await self.c.store[SUBSCRIPTIONS].find_one({"_id": hold["subscription_id"]})
        if sub is None:
            return bool((now - hold["at"]).total_seconds() < HOLD_GRACE_SECONDS)
        if since is not None and sub["requested_at"] < since:
            return False
        return (await self.c.views.state(sub, now))["status"] in RUNNING

    # -- activate -------------------------------------------------------------------------------

    async def activate(
        self, sub: Doc, how: How, now: datetime, correlation_id: str, since: datetime | None
    ) -> Doc:
        """Start the subscription (its `activated` claim), then charge and schedule it. A
        cancellation that got in first wins: its stopper holds slot 0, so nothing is charged."""
        sid = sub["_id"]
        if await self.c.log.get(f"{sid}:cancelled") is not None:
            raise ApiError(409, "cancelled", "this subscription was cancelled")
        if how != "loyalty":
            await self.reserve(sub["msisdn"], sid, int(sub["price_vnd"]), now, since)
        await self._take_hold(sub["msisdn"], sub["code"], sid, now, since)
        marker = f"{sid}:activate"
        await self.c.inflight.open(marker, "activate", subscription_id=sid)
        event = VasConfirmed.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=correlation_id or sid,
            event_id=event_id_for(sid, "confirmed"),
            data=VasConfirmedData(subscription_id=sid, code=sub["code"], how=how, confirmed_at=now),
        )
        channel: Channel = "app" if how == "in_app" else sub["channel"]
        await self.c.log.append(
            sub["msisdn"],
            f"{sid}:activated",
            "activated",
            channel,
            now,
            sub=sub,
            events=[event],
            how=how,
            origin=now,
            correlation_id=correlation_id or sid,
        )
        await self.c.finish(
            marker, self.complete_activation, {"_id": marker, "subscription_id": sid, "at": now}
        )
        return await self.c.views.state(sub, now)

    async def reserve(self, msisdn: str, sid: str, price: int, now: datetime, since: datetime | None) -> None:
        """The first charge's share of the monthly cap (409 when it would exceed it); a
        reservation is per charge, so asking again takes nothing twice."""
        cap = (await self.c.guards.get(msisdn, since))["monthly_cap_vnd"]
        if cap is None or price <= 0:
            return
        if not await self.c.budget.reserve(msisdn, since, cap, charge_id(sid, 0), price, now):
            raise ApiError(409, "monthly_cap_reached", "this would exceed your monthly VAS spending cap")

    async def complete_activation(self, marker: Doc) -> None:
        sid = marker["subscription_id"]
        activated = await self.c.log.get(f"{sid}:activated")
        if activated is None:
            if abandoned(marker):
                return
            raise NotYet(sid)
        if activated.get("outbox"):
            await self.c.log.relay_now(activated)
        sub = await self.c.subscription(sid)
        origin = activated.get("origin") or activated["at"]
        state: ChargeState = "free" if activated.get("how") == "loyalty" else "requested"
        slot = slot_claim(
            template(sub, origin), 0, activated["at"], activated.get("correlation_id", ""), state
        )
        if not await self.c.desk.claim([slot]):
            slot = await self.c.store[CHARGES].find_one({"_id": charge_id(sid, 0)}) or slot  # decided before
        if slot["state"] == "requested":
            await self.c.desk.send([slot])
        else:
            await self.c.budget.release(sub["msisdn"], charge_id(sid, 0))
        await self.c.schedule_after(sub, slot)

    # -- skip -----------------------------------------------------------------------------------

    async def skip(self, sub: Doc, now: datetime, correlation_id: str, period: int | None) -> None:
        """Skip the coming renewal (`period`, when the app names it, makes a retry harmless):
        its slot is claimed as skipped, never charged; the one after is scheduled as usual."""
        sid = sub["_id"]
        newest = await self.c.newest(sid)
        coming = int(newest[0]["period"]) + 1 if newest else 1
        if period is not None and period != coming:
            done = await self.c.store[CHARGES].find_one({"_id": charge_id(sid, period)})
            if done is not None and done["state"] == "skipped":
                return
            raise ApiError(409, "not_the_coming_renewal", f"period {period} is not the coming renewal")
        entry = await self.c.store[SCHEDULE].find_one({"_id": charge_id(sid, coming)})
        if entry is None:
            raise ApiError(409, "nothing_to_skip", "no renewal is scheduled for this subscription")
        if not may_skip(entry, now, self.c.notice_lead):
            raise ApiError(409, "too_early", "only the coming renewal can be skipped, after its notice")
        marker = f"{entry['_id']}:skip"
        await self.c.inflight.open(marker, "skip", subscription_id=sid, period=coming)
        claim = slot_claim(entry["template"], coming, now, correlation_id, "skipped")
        if not await self.c.desk.claim([claim]):
            await self.c.inflight.close(marker)
            raise ApiError(409, "already_renewed", "this period was already charged, skipped or cancelled")
        await self.c.finish(marker, self.complete_skip, {"subscription_id": sid, "period": coming, "at": now})

    async def complete_skip(self, marker: Doc) -> None:
        sid, period = marker["subscription_id"], int(marker["period"])
        slot = await self.c.store[CHARGES].find_one({"_id": charge_id(sid, period)})
        if slot is None or slot["state"] != "skipped":
            if slot is None and not abandoned(marker):
                raise NotYet(sid)
            return
        sub = await self.c.subscription(sid)
        event = VasRenewalSkipped.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=sid,
            event_id=event_id_for(slot["_id"], "skipped"),
            data=VasRenewalSkippedData(
                subscription_id=sid, code=sub["code"], period=period, skipped_at=slot["at"]
            ),
        )
        await self.c.log.append(
            sub["msisdn"],
            f"{slot['_id']}:skipped",
            "renewal_skipped",
            "app",
            slot["at"],
            sub=sub,
            events=[event],
            period=period,
            charge_id=slot["_id"],
        )
        await self.c.schedule_after(sub, slot)

    async def renew_ack(self, sub: Doc, now: datetime) -> None:
        """The notice's "renew": nothing to change, the renewal goes ahead; logged as consent,
        once per coming period."""
        newest = await self.c.newest(sub["_id"])
        coming = int(newest[0]["period"]) + 1 if newest else 1
        entry_id = f"{charge_id(sub['_id'], coming)}:renew_ok"
        await self.c.log.append(
            sub["msisdn"], entry_id, "renewal_accepted", "app", now, sub=sub, period=coming
        )
