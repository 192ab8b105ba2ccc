"""The subscriber's and the partners' use cases as the API offers them: the checks at the edge
(whose subscription, which state, the guard, limits, idempotency keys), then the lifecycle
(lifecycle.py, stopping.py) does the work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from mobi_contracts.events.vas import Channel
from servicekit.api import jsonable
from servicekit.errors import ApiError, not_found
from servicekit.idempotency import IdempotencyKeys, fingerprint
from servicekit.limits import Budget, WindowLimiter
from servicekit.mongo import Doc

from .catalog import Catalog
from .chains import Chains
from .domain.catalog import Pack
from .domain.subscriptions import RUNNING, charge_id, may_start_outside_app, subscription_id_for
from .lifecycle import How, Lifecycle
from .partners import Asker, Partners
from .plans import Plans
from .stopping import Stopping
from .store import SUBSCRIPTIONS


class UseCases:
    def __init__(
        self,
        *,
        chains: Chains,
        catalog: Catalog,
        lifecycle: Lifecycle,
        stopping: Stopping,
        plans: Plans,
        partners: Partners,
        keys: IdempotencyKeys,
        limiter: WindowLimiter,
        app_requests_per_hour: int = 20,
    ) -> None:
        self.c = chains
        self.views = chains.views
        self.catalog = catalog
        self.lifecycle = lifecycle
        self.stopping = stopping
        self.plans = plans
        self.partners = partners
        self.keys = keys
        self.limiter = limiter
        self.app_requests_per_hour = app_requests_per_hour

    # -- reading ----------------------------------------------------------------------------------

    async def overview(self, msisdn: str, now: datetime, since: datetime | None, everything: bool) -> Doc:
        items = await self.views.listing(msisdn, now, since, everything)
        return {
            "items": items,
            "spent_this_month_vnd": await self.views.month_spend(msisdn, since, now),
            "guard": await self.c.guards.get(msisdn, since),
        }

    async def consent_log(self, msisdn: str, limit: int, since: datetime | None) -> list[Doc]:
        return await self.c.log.newest(msisdn, limit, await self.views.hidden(msisdn, since), since)

    # -- starting -----------------------------------------------------------------------------------

    async def subscribe_in_app(
        self, msisdn: str, code: str, key: str, now: datetime, cid: str, since: datetime | None
    ) -> Doc:
        item = await self.catalog.item(code)
        if isinstance(item, Pack):
            raise ApiError(422, "is_a_pack", f"{code} is a pack: buy it at /api/v1/me/vas/packs/{code}/buy")

        async def request() -> Doc:
            await self._app_request_allowed(msisdn)
            sid = subscription_id_for("app", msisdn, key)
            sub, _ = await self.lifecycle.request(
                msisdn, item, "app", sid, now, cid, needs_confirmation=True, since=since
            )
            return await self.views.state(sub, now)

        return await self._idempotent("vas-subscribe", msisdn, key, {"code": code}, request)

    async def buy_pack(
        self,
        msisdn: str,
        code: str,
        key: str,
        auto_renew: bool | None,
        now: datetime,
        cid: str,
        since: datetime | None,
    ) -> Doc:
        item = await self.catalog.item(code)
        if not isinstance(item, Pack):
            raise ApiError(
                422, "not_a_pack", f"{code} is a service: subscribe at /api/v1/me/vas/{code}/subscribe"
            )

        async def buy() -> Doc:
            if set(item.eligible) != {"prepaid", "postpaid"}:
                billing = await self.plans.billing(msisdn, since)
                if billing not in item.eligible:
                    raise ApiError(
                        409, "not_eligible", f"{code} is for {', '.join(item.eligible)} subscriptions"
                    )
            await self._app_request_allowed(msisdn)
            renew = item.auto_renew if auto_renew is None else auto_renew
            sid = subscription_id_for("pack", msisdn, key)
            # The cap is decided first: a purchase it refuses leaves nothing behind.
            await self.lifecycle.reserve(msisdn, sid, item.price_vnd, now, since)
            try:
                sub, _ = await self.lifecycle.request(
                    msisdn,
                    item,
                    "app",
                    sid,
                    now,
                    cid,
                    needs_confirmation=False,
                    since=since,
                    auto_renew=renew,
                )
            except ApiError:
                await self.c.budget.release(msisdn, charge_id(sid, 0))
                raise
            return await self.lifecycle.activate(sub, "in_app", now, cid, since)

        return await self._idempotent("vas-buy", msisdn, key, {"code": code, "auto_renew": auto_renew}, buy)

    async def confirm(self, msisdn: str, sid: str, now: datetime, cid: str, since: datetime | None) -> Doc:
        sub = await self.views.one(msisdn, sid, since)
        current = await self.views.state(sub, now)
        if current["status"] in ("active", "suspended", "ended"):
            return current  # confirmed before (a double tap)
        if current["status"] == "cancelled":
            raise ApiError(409, "cancelled", "this subscription was cancelled")
        if current["status"] == "expired":
            raise ApiError(409, "expired", "the time to confirm has passed; subscribe again")
        return await self.lifecycle.activate(sub, "in_app", now, cid, since)

    async def external_request(
        self,
        asker: Asker,
        named: str | None,
        msisdn: str,
        code: str,
        channel: Channel,
        ref: str,
        now: datetime,
        cid: str,
    ) -> Doc:
        """A content provider or partner web page asks to subscribe someone (the "accidental
        click" path): active at once unless the subscriber's guard makes it wait for consent."""
        provider = self.partners.provider_of(asker, named)
        item = await self.catalog.item(code)
        if isinstance(item, Pack) or item.provider != provider:
            raise ApiError(422, "not_your_service", f"{code} is not a service of {provider}")
        if self.plans.directory is not None:  # a number of ours, and active (404/409 otherwise)
            await self.plans.live_billing(msisdn)
        since = await self.views.tenancy(msisdn)
        sid = subscription_id_for(provider, ref)
        existing = await self.c.store[SUBSCRIPTIONS].find_one({"_id": sid})
        if existing is not None:  # a retry of the same request
            if existing["msisdn"] != msisdn:
                raise ApiError(
                    409, "request_ref_reused", "this request reference names another number's request"
                )
            return await self.views.state(existing, now)
        await self.partners.admit_request(provider, msisdn)
        guard = await self.c.guards.get(msisdn, since)
        direct = may_start_outside_app(guard, provider)
        if not direct:
            await self.partners.admit_confirmation(provider, msisdn)
        sub, _ = await self.lifecycle.request(
            msisdn, item, channel, sid, now, cid, needs_confirmation=not direct, since=since, request_ref=ref
        )
        if not direct:
            return await self.views.state(sub, now)
        how: How = "no_guard" if not guard["block_external"] else "allow_listed"
        try:
            return await self.lifecycle.activate(sub, how, now, cid, since)
        except ApiError as exc:
            if exc.code == "monthly_cap_reached":
                await self.stopping.refuse(sub, now, "monthly_cap_reached")
                raise ApiError(
                    409, "monthly_cap_reached", "the subscriber's monthly VAS cap would be exceeded"
                ) from exc
            raise

    # -- stopping and skipping --------------------------------------------------------------------

    async def cancel_one(self, msisdn: str, sid: str, now: datetime, cid: str, since: datetime | None) -> Doc:
        return await self.stopping.cancel(await self.views.one(msisdn, sid, since), now, cid)

    async def cancel_code(
        self, msisdn: str, code: str, now: datetime, cid: str, since: datetime | None
    ) -> list[Doc]:
        running = [sub for sub, _ in await self.views.running(msisdn, now, since) if sub["code"] == code]
        if not running:
            raise not_found("running subscription of this code")
        return [await self.stopping.cancel(sub, now, cid) for sub in running]

    async def cancel_all(self, msisdn: str, now: datetime, cid: str, since: datetime | None) -> list[Doc]:
        running = await self.views.running(msisdn, now, since)
        return [await self.stopping.cancel(sub, now, cid, reason="cancel_all") for sub, _ in running]

    async def set_auto_renew(
        self, msisdn: str, code: str, enabled: bool, now: datetime, since: datetime | None
    ) -> Doc:
        packs = [
            sub
            for sub, view in await self.views.presented(msisdn, now, since)
            if sub["code"] == code
            and sub["item_kind"] == "pack"
            and view["status"] in ("active", "suspended")
        ]
        if not packs:
            raise not_found("running pack of this code")
        sub = packs[0]
        if enabled:
            await self.stopping.renewal_on(sub, now)
        else:
            await self.stopping.renewal_off(sub, now)
        return await self.views.state(sub, now)

    async def skip(
        self, msisdn: str, sid: str, period: int | None, now: datetime, cid: str, since: datetime | None
    ) -> Doc:
        sub = await self.views.one(msisdn, sid, since)
        if (await self.views.state(sub, now))["status"] not in RUNNING:
            raise ApiError(409, "nothing_to_skip", "this subscription does not renew")
        await self.lifecycle.skip(sub, now, cid, period)
        return await self.views.state(sub, now)

    async def renew_ack(self, msisdn: str, sid: str, now: datetime, since: datetime | None) -> Doc:
        sub = await self.views.one(msisdn, sid, since)
        await self.lifecycle.renew_ack(sub, now)
        return await self.views.state(sub, now)

    # -- helpers ----------------------------------------------------------------------------------

    async def _app_request_allowed(self, msisdn: str) -> None:
        await self.limiter.require(
            [Budget(f"vas:app-requests:{msisdn}", self.app_requests_per_hour, 3600)],
            code="too_many_requests",
            message="too many new subscriptions in an hour; try later",
        )

    async def _idempotent(
        self, scope: str, msisdn: str, key: str, body: Doc, work: Callable[[], Awaitable[Doc]]
    ) -> Doc:
        stored = await self.keys.begin(scope, msisdn, key, fingerprint(body))
        if stored is not None:
            return stored.body
        try:
            result = await work()
        except Exception:
            await self.keys.release(scope, msisdn, key)
            raise
        await self.keys.complete(scope, msisdn, key, 201, jsonable(result))
        return result
