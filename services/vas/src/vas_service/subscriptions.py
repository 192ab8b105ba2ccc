"""Subscriptions: requested (in the app, by a content provider, by a loyalty redemption),
confirmed, charged, skipped, cancelled; data packs; the guard; plan changes.

Every decision is one unique insert (see store.py), so concurrent requests settle on one
outcome, and the events a decision implies travel in the same document (kit outbox).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo.errors import DuplicateKeyError

from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    RedemptionGranted,
    RedemptionGrantedData,
    RedemptionRefused,
    RedemptionRefusedData,
)
from mobi_contracts.events.vas import (
    Channel,
    PlanChanged,
    PlanChangedData,
    VasCancelled,
    VasCancelledData,
    VasConfirmed,
    VasConfirmedData,
    VasRefundRequested,
    VasRefundRequestedData,
    VasRenewalSkipped,
    VasRenewalSkippedData,
    VasSubscribed,
    VasSubscribedData,
)
from servicekit.buckets import hour_of, minute_of
from servicekit.errors import ApiError, not_found
from servicekit.idempotency import IdempotencyKeys, fingerprint
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending

from .charging import PRODUCER, ChargeDesk, charge_claim, insert_claims
from .directory import AccountDirectory
from .domain.catalog import AnyItem, Pack, Plan, parse_item, parse_plan
from .domain.subscriptions import (
    View,
    charge_id,
    derive,
    event_id_for,
    may_start_outside_app,
    month_of,
    period_bounds,
    refund_due,
    subscription_id_for,
    within_cap,
)
from .store import (
    CATALOG,
    CHARGES,
    CONSENTS,
    GUARDS,
    HOLDS,
    PLANS,
    SCHEDULE,
    SUBSCRIBER_PLANS,
    SUBSCRIPTIONS,
)

log = logging.getLogger(__name__)
How = Literal["in_app", "no_guard", "allow_listed", "loyalty"]
RUNNING = ("pending", "active", "suspended")
CATALOG_TTL = 30.0


class VasService:
    def __init__(
        self,
        *,
        store: Store,
        desk: ChargeDesk,
        relay: OutboxRelay,
        keys: IdempotencyKeys,
        directory: AccountDirectory | None,
        topic: Topic,
        confirm_window: timedelta = timedelta(minutes=15),
        refund_window: timedelta = timedelta(hours=48),
        notice_lead: timedelta = timedelta(hours=24),
    ) -> None:
        self.store = store
        self.desk = desk
        self.relay = relay
        self.keys = keys
        self.directory = directory
        self.topic = topic
        self.confirm_window = confirm_window
        self.refund_window = refund_window
        self.notice_lead = notice_lead
        self._catalog: tuple[float, dict[str, AnyItem]] = (0.0, {})

    # -- catalogue ------------------------------------------------------------------------------

    async def catalog(self) -> dict[str, AnyItem]:
        """Items by code (kept for CATALOG_TTL seconds: the catalogue changes by import)."""
        loaded_at, items = self._catalog
        if time.monotonic() - loaded_at > CATALOG_TTL or not items:
            docs = await self.store[CATALOG].find({}).to_list()
            items = {doc["_id"]: parse_item(doc) for doc in docs}
            self._catalog = (time.monotonic(), items)
        return items

    def forget_catalog(self) -> None:
        self._catalog = (0.0, {})

    async def item(self, code: str) -> AnyItem:
        found = (await self.catalog()).get(code)
        if found is None:
            raise not_found("service or pack")
        return found

    async def plans(self) -> list[Plan]:
        return [parse_plan(doc) for doc in await self.store[PLANS].find({}).to_list()]

    # -- reading one's own ------------------------------------------------------------------------

    async def _records(self, msisdn: str) -> tuple[list[Doc], list[Doc], list[Doc], list[Doc]]:
        subs, consents, charges, schedule = await asyncio.gather(
            self.store[SUBSCRIPTIONS].find({"msisdn": msisdn}).to_list(),
            self.store[CONSENTS].find({"msisdn": msisdn}).sort([("at", -1)]).limit(2000).to_list(),
            self.store[CHARGES].find({"msisdn": msisdn}).to_list(),
            self.store[SCHEDULE].find({"msisdn": msisdn}).to_list(),
        )
        return subs, consents, charges, schedule

    async def subscriptions_of(self, msisdn: str, now: datetime, everything: bool = False) -> list[Doc]:
        return [
            view for _, view in await self._presented(msisdn, now) if everything or view["status"] in RUNNING
        ]

    async def _running(self, msisdn: str, now: datetime) -> list[tuple[Doc, Doc]]:
        """The subscriber's running subscriptions with their views (no second read of each)."""
        return [(sub, view) for sub, view in await self._presented(msisdn, now) if view["status"] in RUNNING]

    async def _presented(self, msisdn: str, now: datetime) -> list[tuple[Doc, Doc]]:
        """Every subscription of the subscriber with its view, newest request first."""
        subs, consents, charges, schedule = await self._records(msisdn)
        pairs = [(s, self._present(s, consents, charges, schedule, now)) for s in subs]
        return sorted(pairs, key=lambda pair: pair[1]["requested_at"], reverse=True)

    def _present(
        self, sub: Doc, consents: list[Doc], charges: list[Doc], schedule: list[Doc], now: datetime
    ) -> Doc:
        view = self._view(sub, consents, charges, schedule, now)
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
            "auto_renew": _auto_renew(sub, consents),
            "requested_at": sub["requested_at"],
            "confirm_by": sub.get("confirm_by") if view.status == "pending" else None,
            "started_at": view.started_at,
            "current_period_end": view.current_period_end,
            "next_renewal_at": view.next_renewal_at,
            "spent_this_month_vnd": view.spent_this_month_vnd,
        }

    @staticmethod
    def _view(sub: Doc, consents: list[Doc], charges: list[Doc], schedule: list[Doc], now: datetime) -> View:
        sid = sub["_id"]
        mine = [c for c in charges if c["subscription_id"] == sid]
        claimed = {c["period"] for c in mine}
        upcoming = [e for e in schedule if e["subscription_id"] == sid and e["period"] not in claimed]
        next_entry = min(upcoming, key=lambda e: e["period"], default=None)
        return derive(sub, [c for c in consents if c.get("subscription_id") == sid], mine, next_entry, now)

    async def one(self, msisdn: str, subscription_id: str) -> Doc:
        """A subscription of the caller's; another's is as good as absent (404)."""
        sub = await self.store[SUBSCRIPTIONS].find_one({"_id": subscription_id})
        if sub is None or sub["msisdn"] != msisdn:
            raise not_found("subscription")
        return sub

    async def state(self, sub: Doc, now: datetime) -> Doc:
        sid = sub["_id"]
        consents, charges, schedule = await asyncio.gather(
            self.store[CONSENTS].find({"msisdn": sub["msisdn"], "subscription_id": sid}).to_list(),
            self.store[CHARGES].find({"msisdn": sub["msisdn"], "subscription_id": sid}).to_list(),
            self.store[SCHEDULE].find({"subscription_id": sid}).to_list(),
        )
        return self._present(sub, consents, charges, schedule, now)

    async def consent_log(self, msisdn: str, limit: int) -> list[Doc]:
        rows = await self.store[CONSENTS].find({"msisdn": msisdn}).sort([("at", -1)]).limit(limit).to_list()
        shown = (
            "subscription_id",
            "code",
            "action",
            "channel",
            "charge_id",
            "period",
            "amount_vnd",
            "reason",
            "how",
            "provider",
            "detail",
        )
        return [
            {"id": r["_id"], "at": r["at"], **{k: r[k] for k in shown if r.get(k) is not None}} for r in rows
        ]

    async def month_spend(self, msisdn: str, now: datetime) -> int:
        """What VAS and packs cost the subscriber this month (asked, not refused, not refunded)."""
        month = month_of(now)
        claims, answers = await asyncio.gather(
            self.store[CHARGES].find({"msisdn": msisdn, "month": month}).to_list(),
            self.store[CONSENTS].find({"msisdn": msisdn, "month": month}).to_list(),
        )
        undone = {a["charge_id"] for a in answers if a["action"] in ("charge_failed", "refunded")}
        return sum(c["amount_vnd"] for c in claims if c["state"] == "requested" and c["_id"] not in undone)

    # -- guard ----------------------------------------------------------------------------------

    async def guard(self, msisdn: str) -> Doc:
        doc = await self.store[GUARDS].find_one({"_id": msisdn})
        return {
            "block_external": bool(doc and doc.get("block_external")),
            "allowed_providers": list(doc.get("allowed_providers", [])) if doc else [],
            "monthly_cap_vnd": doc.get("monthly_cap_vnd") if doc else None,
        }

    async def set_guard(self, msisdn: str, guard: Doc, now: datetime, correlation_id: str) -> Doc:
        await self.store[GUARDS].replace_one(
            {"_id": msisdn},
            {**guard, "has_cap": guard.get("monthly_cap_vnd") is not None, "updated_at": now},
            upsert=True,
        )
        await self._log(
            msisdn, f"{msisdn}:guard:{uuid.uuid4().hex}", "guard_changed", "app", now, detail=guard
        )
        return await self.guard(msisdn)

    # -- subscribing ----------------------------------------------------------------------------

    async def subscribe_in_app(
        self, msisdn: str, code: str, key: str, now: datetime, correlation_id: str
    ) -> Doc:
        item = await self.item(code)
        if isinstance(item, Pack):
            raise ApiError(422, "is_a_pack", f"{code} is a pack: buy it at /api/v1/me/vas/packs/{code}/buy")

        async def request() -> Doc:
            _, view = await self._request(
                msisdn,
                item,
                "app",
                subscription_id_for("app", msisdn, key),
                now,
                correlation_id,
                needs_confirmation=True,
            )
            return view

        return await self._idempotent("vas-subscribe", msisdn, key, {"code": code}, request)

    async def buy_pack(
        self, msisdn: str, code: str, key: str, auto_renew: bool | None, now: datetime, correlation_id: str
    ) -> Doc:
        item = await self.item(code)
        if not isinstance(item, Pack):
            raise ApiError(
                422, "not_a_pack", f"{code} is a service: subscribe at /api/v1/me/vas/{code}/subscribe"
            )

        async def buy() -> Doc:
            if set(item.eligible) != {"prepaid", "postpaid"}:
                billing = await self._billing(msisdn)
                if billing not in item.eligible:
                    raise ApiError(
                        409, "not_eligible", f"{code} is for {', '.join(item.eligible)} subscriptions"
                    )
            renew = item.auto_renew if auto_renew is None else auto_renew
            sid = subscription_id_for("pack", msisdn, key)
            sub, view = await self._request(
                msisdn, item, "app", sid, now, correlation_id, needs_confirmation=False, auto_renew=renew
            )
            return (
                await self._activate(sub, "in_app", now, correlation_id)
                if view["status"] == "pending"
                else view
            )

        return await self._idempotent("vas-buy", msisdn, key, {"code": code, "auto_renew": auto_renew}, buy)

    async def _idempotent(self, scope: str, msisdn: str, key: str, body: Doc, work: Any) -> Doc:
        stored = await self.keys.begin(scope, msisdn, key, fingerprint(body))
        if stored is not None:
            return stored.body
        try:
            result: Doc = await work()
        except Exception:
            await self.keys.release(scope, msisdn, key)
            raise
        await self.keys.complete(scope, msisdn, key, 201, jsonable(result))
        return result

    async def _request(
        self,
        msisdn: str,
        item: AnyItem,
        channel: Channel,
        sid: str,
        now: datetime,
        correlation_id: str,
        *,
        needs_confirmation: bool,
        auto_renew: bool = True,
        request_ref: str = "",
    ) -> tuple[Doc, Doc]:
        """Record the request (the subscription and its `requested` consent entry); the
        subscription and its view."""
        if await self._running_holder(msisdn, item.code) not in (None, sid):
            raise ApiError(409, "already_subscribed", f"{item.code} is already running on this number")
        confirm_by = now + self.confirm_window if needs_confirmation else None
        sub = {
            "_id": sid,
            "msisdn": msisdn,
            "code": item.code,
            "name": item.name_vi,
            "item_kind": item.item_kind,
            "provider": item.provider,
            "price_vnd": item.price_vnd,
            "period_days": item.period_days,
            "quota_kb": getattr(item, "quota_kb", None),
            "auto_renew": auto_renew and channel != "loyalty",
            "channel": channel,
            "needs_confirmation": needs_confirmation,
            "confirm_by": confirm_by,
            "request_ref": request_ref,
            "requested_at": now,
        }
        try:
            await self.store[SUBSCRIPTIONS].insert_one(sub)
        except DuplicateKeyError:  # the same request again (a retry): answer with what it made
            existing = await self.one(msisdn, sid)
            return existing, await self.state(existing, now)
        event = VasSubscribed.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or sid,
            event_id=event_id_for(sid, "subscribed"),
            data=VasSubscribedData(
                subscription_id=sid,
                code=item.code,
                item_kind=item.item_kind,
                provider=item.provider,
                channel=channel,
                price_vnd=item.price_vnd,
                period_days=item.period_days,
                needs_confirmation=needs_confirmation,
                confirm_by=confirm_by,
                requested_at=now,
            ),
        )
        await self._log(
            msisdn,
            f"{sid}:requested",
            "requested",
            channel,
            now,
            sub=sub,
            events=[event],
            provider=item.provider,
            detail={"request_ref": request_ref} if request_ref else None,
        )
        # Just recorded: nothing else of it exists yet (no need to read it back), so it is pending.
        return sub, self._present(sub, [], [], [], now)

    async def confirm(self, msisdn: str, subscription_id: str, now: datetime, correlation_id: str) -> Doc:
        sub = await self.one(msisdn, subscription_id)
        current = await self.state(sub, now)
        if current["status"] in ("active", "suspended", "ended"):
            return current  # confirmed before (a double tap)
        if current["status"] == "cancelled":
            raise ApiError(409, "cancelled", "this subscription was cancelled")
        if current["status"] == "expired":
            raise ApiError(409, "expired", "the time to confirm has passed; subscribe again")
        await self._check_cap(msisdn, sub["price_vnd"], now)
        return await self._activate(sub, "in_app", now, correlation_id)

    async def _check_cap(self, msisdn: str, amount: int, now: datetime) -> None:
        guard = await self.guard(msisdn)
        if guard["monthly_cap_vnd"] is not None and not within_cap(
            guard, await self.month_spend(msisdn, now), amount
        ):
            raise ApiError(409, "monthly_cap_reached", "this would exceed your monthly VAS spending cap")

    async def _running_holder(self, msisdn: str, code: str) -> str | None:
        """The subscription holding (subscriber, code), if it still runs."""
        hold = await self.store[HOLDS].find_one({"_id": f"{msisdn}:{code}"})
        if hold is None:
            return None
        holder = hold["subscription_id"]
        if await self.store[CONSENTS].find_one({"_id": f"{holder}:cancelled"}) is not None:
            return None
        sub = await self.store[SUBSCRIPTIONS].find_one({"_id": holder})
        if sub is not None and (await self.state(sub, datetime.now(UTC)))["status"] in ("ended", "expired"):
            return None
        return str(holder)

    async def _take_hold(self, sub: Doc) -> None:
        hold_id = f"{sub['msisdn']}:{sub['code']}"
        for _ in range(3):
            if await self.store.claim(HOLDS, hold_id, subscription_id=sub["_id"]):
                return
            holder = await self._running_holder(sub["msisdn"], sub["code"])
            if holder == sub["_id"]:
                return
            if holder is not None:
                raise ApiError(409, "already_subscribed", f"{sub['code']} is already running on this number")
            stale = await self.store[HOLDS].find_one({"_id": hold_id})
            if stale is not None:  # its subscription ended: free the code (only that hold)
                await self.store[HOLDS].delete_one(
                    {"_id": hold_id, "subscription_id": stale["subscription_id"]}
                )
        raise ApiError(409, "busy", "another change of this service is in progress; retry")

    async def _activate(self, sub: Doc, how: How, now: datetime, correlation_id: str) -> Doc:
        """Start the subscription: its hold, the `activated` decision, the first charge, the
        next renewal. A cancellation that got in first wins (the charge is voided)."""
        sid = sub["_id"]
        await self._take_hold(sub)
        event = VasConfirmed.new(
            subject=sub["msisdn"],
            producer=PRODUCER,
            correlation_id=correlation_id or sid,
            event_id=event_id_for(sid, "confirmed"),
            data=VasConfirmedData(subscription_id=sid, code=sub["code"], how=how, confirmed_at=now),
        )
        channel: Channel = "app" if how == "in_app" else sub["channel"]
        first = await self._log(
            sub["msisdn"], f"{sid}:activated", "activated", channel, now, sub=sub, events=[event], how=how
        )
        if first:
            template = self.template(sub, now)
            if how == "loyalty":
                await insert_claims(
                    self.store, CHARGES, [charge_claim(template, 0, now, correlation_id, self.topic, "free")]
                )
            else:
                await self.desk.request(
                    [charge_claim(template, 0, now, correlation_id, self.topic)], since=now
                )
                if sub.get("auto_renew", True):
                    await self.append_schedule([template], 1)
        return await self.state(sub, now)

    def template(self, sub: Doc, started_at: datetime) -> Doc:
        """What a charge of this subscription needs (schedule entries carry it)."""
        return {
            "subscription_id": sub["_id"],
            "msisdn": sub["msisdn"],
            "code": sub["code"],
            "name": sub["name"],
            "item_kind": sub["item_kind"],
            "price_vnd": sub["price_vnd"],
            "period_days": sub["period_days"],
            "quota_kb": sub.get("quota_kb"),
            "auto_renew": sub.get("auto_renew", True),
            "started_at": started_at,
        }

    async def append_schedule(self, templates: list[Doc], period: int) -> int:
        return await self.store.insert_new(SCHEDULE, [self.schedule_entry(t, period) for t in templates])

    def schedule_entry(self, template: Doc, period: int) -> Doc:
        due, _ = period_bounds(template["started_at"], template["period_days"], period)
        notice = due - min(self.notice_lead, timedelta(days=template["period_days"]) / 2)
        return {
            "_id": charge_id(template["subscription_id"], period),
            "subscription_id": template["subscription_id"],
            "msisdn": template["msisdn"],
            "period": period,
            "due_at": due,
            "due_minute": minute_of(due),
            "notice_at": notice,
            "notice_minute": minute_of(notice),
            "template": template,
        }

    # -- from outside the app ---------------------------------------------------------------------

    async def external_request(
        self,
        *,
        provider: str,
        msisdn: str,
        code: str,
        channel: Channel,
        request_ref: str,
        now: datetime,
        correlation_id: str,
    ) -> Doc:
        """A content provider or partner web page asks to subscribe someone (the "accidental
        click" path): active at once unless the subscriber's guard makes it wait for consent."""
        item = await self.item(code)
        if isinstance(item, Pack) or item.provider != provider:
            raise ApiError(422, "not_your_service", f"{code} is not a service of {provider}")
        if self.directory is not None:  # a number of ours, and active (404/409 otherwise)
            await self.directory.billing(msisdn)
        guard = await self.guard(msisdn)
        direct = may_start_outside_app(guard, provider)
        sid = subscription_id_for(provider, request_ref)
        sub, view = await self._request(
            msisdn,
            item,
            channel,
            sid,
            now,
            correlation_id,
            needs_confirmation=not direct,
            request_ref=request_ref,
        )
        if not direct or view["status"] != "pending":
            return view
        spend = await self.month_spend(msisdn, now)
        if not within_cap(guard, spend, item.price_vnd):
            await self._log(
                msisdn, f"{sid}:refused", "refused", channel, now, sub=sub, reason="monthly_cap_reached"
            )
            raise ApiError(409, "monthly_cap_reached", "the subscriber's monthly VAS cap would be exceeded")
        how: How = "no_guard" if not guard["block_external"] else "allow_listed"
        return await self._activate(sub, how, now, correlation_id)

    # -- loyalty ----------------------------------------------------------------------------------

    async def grant_redemptions(self, events: list[PointsRedeemed], now: datetime) -> None:
        """Activate a redeemed VAS for one free period (no renewal: nothing is ever charged),
        answering loyalty once per redemption (the answer is stored with the decision)."""
        for event in events:
            reward = event.data.reward
            if reward.kind != "vas" or reward.vas_code is None:
                continue
            sid = subscription_id_for("loyalty", event.data.redemption_id)
            answer_id = f"{sid}:redemption"
            existing = await self.store[CONSENTS].find_one({"_id": answer_id})
            if existing is None:
                answer = await self._decide_redemption(event, reward.vas_code, sid, now)
                if await self._log(
                    event.subject,
                    answer_id,
                    "redemption_answered",
                    "loyalty",
                    now,
                    sub={"_id": sid, "code": reward.vas_code},
                    events=[answer],
                ):
                    continue  # recorded here, and _log relayed the answer
                # Another delivery recorded it first: relay its answer if it is still pending.
                existing = await self.store[CONSENTS].find_one({"_id": answer_id})
            if existing is not None and existing.get("outbox"):
                await self.relay.relay(existing)

    async def _decide_redemption(self, event: PointsRedeemed, code: str, sid: str, now: datetime) -> AnyEvent:
        common: dict[str, Any] = {
            "subject": event.subject,
            "producer": PRODUCER,
            "correlation_id": event.correlation_id,
            "causation_id": str(event.event_id),
        }
        item = (await self.catalog()).get(code)
        reason: Literal["unknown_reward", "already_active"] | None = None
        if item is None or isinstance(item, Pack):
            reason = "unknown_reward"
        else:
            try:
                sub, view = await self._request(
                    event.subject,
                    item,
                    "loyalty",
                    sid,
                    now,
                    event.correlation_id,
                    needs_confirmation=False,
                    request_ref=event.data.redemption_id,
                )
                if view["status"] == "pending":
                    await self._activate(sub, "loyalty", now, event.correlation_id)
            except ApiError as exc:
                if exc.code != "already_subscribed":
                    raise
                reason = "already_active"
        if reason is not None:
            return RedemptionRefused.new(
                **common,
                event_id=event_id_for(sid, "redemption"),
                data=RedemptionRefusedData(
                    redemption_id=event.data.redemption_id,
                    granter="vas-service",
                    cause_event_id=str(event.event_id),
                    reason=reason,
                    detail=f"VAS {code}",
                    refused_at=now,
                ),
            )
        assert item is not None
        return RedemptionGranted.new(
            **common,
            event_id=event_id_for(sid, "redemption"),
            data=RedemptionGrantedData(
                redemption_id=event.data.redemption_id,
                granter="vas-service",
                cause_event_id=str(event.event_id),
                granted_at=now,
                description=f"{item.name_vi}, {item.period_days} ngày miễn phí"[:200],
            ),
        )

    # -- stopping ---------------------------------------------------------------------------------

    async def cancel(
        self,
        sub: Doc,
        now: datetime,
        correlation_id: str,
        channel: Channel = "app",
        reason: Literal["subscriber", "cancel_all", "auto_renew_off"] = "subscriber",
    ) -> Doc:
        """Stop every further charge, at once: the scheduled periods are claimed as cancelled
        (a renewal pass that comes later finds them taken; one running now voids its claim when
        it sees the cancellation), then the cancellation is recorded with its events."""
        sid = sub["_id"]
        scheduled = await self.store[SCHEDULE].find({"subscription_id": sid}).to_list()
        activated = await self.store[CONSENTS].find_one({"_id": f"{sid}:activated"})
        started_at: datetime | None = activated["at"] if activated else None
        template = self.template(sub, started_at or now)
        await insert_claims(
            self.store,
            CHARGES,
            [
                charge_claim(template, e["period"], now, correlation_id, self.topic, "cancelled")
                for e in scheduled
            ],
        )
        refund = 0
        events: list[AnyEvent] = []
        common: dict[str, Any] = {
            "subject": sub["msisdn"],
            "producer": PRODUCER,
            "correlation_id": correlation_id or sid,
        }
        if started_at is not None and refund_due(sub, started_at, now, self.refund_window):
            first = await self.store[CONSENTS].find_one({"_id": f"{charge_id(sid, 0)}:charged"})
            if first is not None:
                refund = int(first["amount_vnd"])
                events.append(
                    VasRefundRequested.new(
                        **common,
                        event_id=event_id_for(sid, "refund"),
                        data=VasRefundRequestedData(
                            refund_id=f"{charge_id(sid, 0)}:refund",
                            charge_id=charge_id(sid, 0),
                            subscription_id=sid,
                            amount_vnd=refund,
                            description=f"Hoàn tiền {sub['code']}: hủy trong thời hạn",
                            requested_at=now,
                        ),
                    )
                )
        events.insert(
            0,
            VasCancelled.new(
                **common,
                event_id=event_id_for(sid, "cancelled"),
                data=VasCancelledData(
                    subscription_id=sid,
                    code=sub["code"],
                    channel=channel,
                    reason=reason,
                    refund_vnd=refund,
                    cancelled_at=now,
                ),
            ),
        )
        recorded = await self._log(
            sub["msisdn"],
            f"{sid}:cancelled",
            "cancelled",
            channel,
            now,
            sub=sub,
            events=events,
            reason=reason,
        )
        if recorded and refund and started_at is not None:
            await self._log(
                sub["msisdn"],
                f"{charge_id(sid, 0)}:refunded",
                "refunded",
                "system",
                now,
                sub=sub,
                charge_id=charge_id(sid, 0),
                amount_vnd=refund,
                month=month_of(started_at),
            )
        # Housekeeping: the claims above already stop the charges.
        await self.store.delete_where(SCHEDULE, {"subscription_id": sid})
        await self.store[HOLDS].delete_one({"_id": f"{sub['msisdn']}:{sub['code']}", "subscription_id": sid})
        return await self.state(sub, now)

    async def cancel_code(self, msisdn: str, code: str, now: datetime, correlation_id: str) -> list[Doc]:
        running = [sub for sub, _ in await self._running(msisdn, now) if sub["code"] == code]
        if not running:
            raise not_found("running subscription of this code")
        return [await self.cancel(sub, now, correlation_id) for sub in running]

    async def cancel_all(self, msisdn: str, now: datetime, correlation_id: str) -> list[Doc]:
        running = await self._running(msisdn, now)
        return [await self.cancel(sub, now, correlation_id, reason="cancel_all") for sub, _ in running]

    async def set_auto_renew(
        self, msisdn: str, code: str, enabled: bool, now: datetime, correlation_id: str
    ) -> Doc:
        running = [
            sub
            for sub, _ in await self._running(msisdn, now)
            if sub["code"] == code and sub["item_kind"] == "pack"
        ]
        if not running:
            raise not_found("running pack of this code")
        sub = running[0]
        if not enabled:
            await self._log(
                msisdn,
                f"{sub['_id']}:auto_renew_off:{uuid.uuid4().hex[:8]}",
                "auto_renew_off",
                "app",
                now,
                sub=sub,
            )
            await self.store.delete_where(SCHEDULE, {"subscription_id": sub["_id"]})
        else:
            claims = await self.store[CHARGES].find({"subscription_id": sub["_id"]}).to_list()
            following = max((c["period"] for c in claims), default=0) + 1
            activated = await self.store[CONSENTS].find_one({"_id": f"{sub['_id']}:activated"})
            if activated is None:
                raise ApiError(409, "not_active", "the pack is not active")
            await self._log(
                msisdn,
                f"{sub['_id']}:auto_renew_on:{uuid.uuid4().hex[:8]}",
                "auto_renew_on",
                "app",
                now,
                sub=sub,
            )
            await self.append_schedule([self.template(sub, activated["at"])], following)
        return await self.state(sub, now)

    async def skip(self, msisdn: str, subscription_id: str, now: datetime, correlation_id: str) -> Doc:
        """Skip the next renewal: its period is claimed as skipped (never charged), the one
        after it is scheduled as usual."""
        sub = await self.one(msisdn, subscription_id)
        entries = await self.store[SCHEDULE].find({"subscription_id": subscription_id}).to_list()
        claimed = {
            c["_id"] for c in await self.store[CHARGES].find({"subscription_id": subscription_id}).to_list()
        }
        upcoming = sorted((e for e in entries if e["_id"] not in claimed), key=lambda e: e["period"])
        if not upcoming:
            raise ApiError(409, "nothing_to_skip", "no renewal is scheduled for this subscription")
        entry = upcoming[0]
        template = entry["template"]
        taken = await insert_claims(
            self.store,
            CHARGES,
            [charge_claim(template, entry["period"], now, correlation_id, self.topic, "skipped")],
        )
        if not taken:
            raise ApiError(409, "already_renewed", "this period was already charged or skipped")
        event = VasRenewalSkipped.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or subscription_id,
            event_id=event_id_for(entry["_id"], "skipped"),
            data=VasRenewalSkippedData(
                subscription_id=subscription_id, code=sub["code"], period=entry["period"], skipped_at=now
            ),
        )
        await self._log(
            msisdn,
            f"{entry['_id']}:skipped",
            "renewal_skipped",
            "app",
            now,
            sub=sub,
            events=[event],
            period=entry["period"],
            charge_id=entry["_id"],
        )
        await self.append_schedule([template], entry["period"] + 1)
        return await self.state(sub, now)

    async def renew_ack(self, msisdn: str, subscription_id: str, now: datetime) -> Doc:
        """ "Renew" on the notice: nothing to change, the renewal goes ahead; logged as consent."""
        sub = await self.one(msisdn, subscription_id)
        await self._log(
            msisdn,
            f"{subscription_id}:renew_ok:{uuid.uuid4().hex[:8]}",
            "renewal_accepted",
            "app",
            now,
            sub=sub,
        )
        return await self.state(sub, now)

    # -- plan -------------------------------------------------------------------------------------

    async def _billing(self, msisdn: str) -> str:
        known = await self.store[SUBSCRIBER_PLANS].find_one({"_id": msisdn})
        if known is not None:
            return str(known["billing"])
        if self.directory is None:
            raise ApiError(503, "unavailable", "cannot check the subscription right now")
        return await self.directory.billing(msisdn)

    async def change_plan(self, msisdn: str, plan_code: str, now: datetime, correlation_id: str) -> Doc:
        plans = {p.code: p for p in await self.plans()}
        target = plans.get(plan_code)
        if target is None:
            raise not_found("plan")
        billing = await self._billing(msisdn)
        if billing != target.billing:
            raise ApiError(
                409, "not_allowed", f"moving to a {target.billing} plan needs a visit to a MobiFone store"
            )
        current = await self.store[SUBSCRIBER_PLANS].find_one({"_id": msisdn})
        old = current["plan_code"] if current else None
        if old == plan_code:
            raise ApiError(409, "same_plan", "this is already your plan")
        change_id = uuid.uuid4().hex
        event = PlanChanged.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or change_id,
            event_id=event_id_for(msisdn, "plan", change_id),
            data=PlanChangedData(
                change_id=change_id,
                old_plan_code=old,
                new_plan_code=plan_code,
                billing=target.billing,
                effective_at=now,
            ),
        )
        await self.store[SUBSCRIBER_PLANS].replace_one(
            {"_id": msisdn}, {"plan_code": plan_code, "billing": target.billing, "since": now}, upsert=True
        )
        await self._log(
            msisdn,
            f"{msisdn}:plan:{change_id}",
            "plan_changed",
            "app",
            now,
            events=[event],
            detail={"from": old, "to": plan_code},
        )
        return {
            "plan_code": plan_code,
            "name": target.name,
            "billing": target.billing,
            "previous": old,
            "effective_at": now,
        }

    # -- the log ----------------------------------------------------------------------------------

    async def _log(
        self,
        msisdn: str,
        entry_id: str,
        action: str,
        channel: str,
        now: datetime,
        *,
        sub: Doc | None = None,
        events: list[AnyEvent] | None = None,
        **fields: Any,
    ) -> bool:
        """Append a consent-log entry (a claim of `entry_id`), publishing its events. False
        when the entry was there already (the decision was taken before)."""
        entries = outbox_entries(self.topic, events or [])
        body = {
            "msisdn": msisdn,
            "subscription_id": sub["_id"] if sub else None,
            "code": sub.get("code") if sub else None,
            "action": action,
            "channel": channel,
            "at": now,
            "hour": hour_of(datetime.now(UTC)),  # real time: the renewal pass looks for it by it
            "rev": 1,
            **{k: v for k, v in fields.items() if v is not None},
        }
        if not await self.store.claim(CONSENTS, entry_id, **with_pending(body, entries, now)):
            return False
        if entries:
            await self.relay.relay({"_id": entry_id, "rev": 1, "outbox": entries})
        return True


def _auto_renew(sub: Doc, consents: list[Doc]) -> bool:
    """The subscriber's last auto-renew switch, else what the subscription started with."""
    switches = [
        c
        for c in consents
        if c.get("subscription_id") == sub["_id"] and c["action"].startswith("auto_renew_")
    ]
    if not switches:
        return bool(sub.get("auto_renew", True))
    return bool(max(switches, key=lambda c: c["at"])["action"] == "auto_renew_on")


def jsonable(doc: Doc) -> Doc:
    """Stored responses are JSON (datetimes as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items()}
