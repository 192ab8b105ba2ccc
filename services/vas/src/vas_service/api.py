"""HTTP API of the VAS service: the catalogue, the subscriber's own services and packs, the
guard and the consent log; internal routes for content providers and operators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from mobi_contracts.msisdn import MsisdnInput
from servicekit.api import Body, IdempotencyKey, declare_errors, errors, jsonable
from servicekit.auth import Caller, CurrentCaller
from servicekit.errors import ApiError
from servicekit.http import internal_callers
from servicekit.idempotency import require_key
from servicekit.logs import correlation_id

from .domain.catalog import Pack, Plan, Vas
from .partners import Asker, Partners
from .use_cases import UseCases

public = APIRouter(prefix="/api/v1/vas", tags=["catalogue"])
me = APIRouter(prefix="/api/v1/me", tags=["my services"])
partners = APIRouter(prefix="/internal/v1/vas", tags=["internal"])
ops = APIRouter(prefix="/internal/v1/vas", tags=["internal"], dependencies=[Depends(internal_callers("ops"))])

Code = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{2,16}$", description="service or pack code")]
SubscriptionId = Annotated[str, Path(pattern=r"^sub-[A-Z2-7]{16}$")]


class Guard(Body):
    block_external: bool = Field(
        description="subscriptions started outside the app (SMS, partner web pages) wait for in-app consent"
    )
    allowed_providers: list[Annotated[str, Field(pattern=r"^[a-z0-9-]{2,32}$")]] = Field(
        default_factory=list, max_length=50, description="content providers that may still start them"
    )
    monthly_cap_vnd: int | None = Field(
        default=None, ge=0, le=10_000_000, description="most VAS and packs may cost a month; none: no cap"
    )


class PackPurchase(Body):
    auto_renew: bool | None = Field(default=None, description="default: the pack's own setting")


class AutoRenew(Body):
    enabled: bool


class Skip(Body):
    period: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="the renewal to skip (from its notice); retries are harmless",
    )


class PlanChange(Body):
    plan_code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")


class ExternalRequest(Body):
    msisdn: MsisdnInput
    code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")
    provider: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]{2,32}$",
        description="the provider an operator acts for; a provider's own credential says who it is",
    )
    channel: Literal["sms", "partner_web"]
    request_ref: str = Field(
        pattern=r"^[A-Za-z0-9_:.-]{4,64}$", description="the provider's id: a retry reuses it"
    )


class CatalogImport(Body):
    vas: list[Vas] = Field(min_length=1, max_length=500)
    packs: list[Pack] = Field(default_factory=list, max_length=500)
    plans: list[Plan] = Field(default_factory=list, max_length=100)


class RenewalPass(Body):
    now: datetime | None = Field(default=None, description="simulated time (tests); default now")
    msisdn: str | None = Field(default=None, pattern=r"^84\d{9}$", description="only this subscriber")


def _vas(request: Request) -> UseCases:
    use_cases: UseCases = request.app.state.use_cases
    return use_cases


@declare_errors(401, 403)
def _asker(request: Request) -> Asker:
    known: Partners = request.app.state.partners
    return known.authenticate(request)


def _now() -> datetime:
    return datetime.now(UTC)


def _cid() -> str:
    return correlation_id.get() or ""


async def _since(request: Request, caller: Caller) -> datetime | None:
    """When the caller's tenancy of the number began (the token says it once it carries it)."""
    told = getattr(caller, "owner_since", None)
    if isinstance(told, int | float):
        told = datetime.fromtimestamp(told, UTC)
    return await _vas(request).views.tenancy(caller.msisdn, told if isinstance(told, datetime) else None)


# -- catalogue ------------------------------------------------------------------------------------


@public.get("/catalog")
async def catalog(request: Request) -> dict[str, Any]:
    """Value-added services: code, names, content provider, price, period, how to cancel by SMS."""
    items = (await _vas(request).catalog.items()).values()
    return {"items": [i.model_dump() | {"period_days": i.period_days} for i in items if isinstance(i, Vas)]}


@public.get("/packs")
async def packs(request: Request) -> dict[str, Any]:
    """Data, voice and roaming packs: price, validity, quota, auto-renewal, who may buy them."""
    items = (await _vas(request).catalog.items()).values()
    return {"items": [i.model_dump() for i in items if isinstance(i, Pack)]}


@public.get("/plans")
async def plans(request: Request) -> dict[str, Any]:
    return {"items": [p.model_dump() for p in await _vas(request).catalog.plans()]}


# -- the subscriber's own -------------------------------------------------------------------------


@me.get("/vas")
async def my_services(
    caller: CurrentCaller, request: Request, include_ended: Annotated[bool, Query(alias="all")] = False
) -> dict[str, Any]:
    """Running subscriptions and packs (`all=true`: also pending, ended and cancelled ones),
    with what they cost this month and how each was started."""
    return await _vas(request).overview(caller.msisdn, _now(), await _since(request, caller), include_ended)


@me.post("/vas/{code}/subscribe", status_code=201, responses=errors(404, 409))
async def subscribe(
    code: Code, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> JSONResponse:
    """A pending subscription: nothing is charged until it is confirmed (within the window)."""
    since = await _since(request, caller)
    body = await _vas(request).subscribe_in_app(
        caller.msisdn, code.upper(), require_key(key), _now(), _cid(), since
    )
    return JSONResponse(jsonable(body), status_code=201)


@me.get("/vas/subscriptions/{subscription_id}", responses=errors(404))
async def subscription(
    subscription_id: SubscriptionId, caller: CurrentCaller, request: Request
) -> dict[str, Any]:
    vas = _vas(request)
    sub = await vas.views.one(caller.msisdn, subscription_id, await _since(request, caller))
    return await vas.views.state(sub, _now())


@me.post("/vas/subscriptions/{subscription_id}/confirm", responses=errors(404, 409))
async def confirm(subscription_id: SubscriptionId, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    since = await _since(request, caller)
    return await _vas(request).confirm(caller.msisdn, subscription_id, _now(), _cid(), since)


@me.post("/vas/subscriptions/{subscription_id}/cancel", responses=errors(404, 409))
async def cancel_one(
    subscription_id: SubscriptionId, caller: CurrentCaller, request: Request
) -> dict[str, Any]:
    """Cancel: no charge is published after this answers."""
    since = await _since(request, caller)
    return await _vas(request).cancel_one(caller.msisdn, subscription_id, _now(), _cid(), since)


@me.post("/vas/subscriptions/{subscription_id}/skip", responses=errors(404, 409))
async def skip(
    subscription_id: SubscriptionId, caller: CurrentCaller, request: Request, body: Skip | None = None
) -> dict[str, Any]:
    """Skip the coming renewal (the renewal notice's "skip this period")."""
    since = await _since(request, caller)
    period = body.period if body else None
    return await _vas(request).skip(caller.msisdn, subscription_id, period, _now(), _cid(), since)


@me.post("/vas/subscriptions/{subscription_id}/renew", responses=errors(404, 409))
async def renew(subscription_id: SubscriptionId, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """The renewal notice's "renew": the renewal goes ahead (recorded in the consent log)."""
    since = await _since(request, caller)
    return await _vas(request).renew_ack(caller.msisdn, subscription_id, _now(), since)


@me.post("/vas/cancel-all", responses=errors(409))
async def cancel_all(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Stop every running service and pack renewal at once."""
    since = await _since(request, caller)
    return {"cancelled": await _vas(request).cancel_all(caller.msisdn, _now(), _cid(), since)}


@me.post("/vas/{code}/cancel", responses=errors(404, 409))
async def cancel_code(code: Code, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Stop a service (or a pack's renewals) by its code: no further charge."""
    since = await _since(request, caller)
    return {"cancelled": await _vas(request).cancel_code(caller.msisdn, code.upper(), _now(), _cid(), since)}


@me.post("/vas/packs/{code}/buy", status_code=201, responses=errors(404, 409))
async def buy_pack(
    code: Code,
    caller: CurrentCaller,
    request: Request,
    body: PackPurchase | None = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Buy a pack: the account service takes the price from the balance (refused when it is
    short) and adds what the pack gives (data, minutes, SMS); see `GET /api/v1/me/balances`."""
    auto_renew = body.auto_renew if body else None
    since = await _since(request, caller)
    result = await _vas(request).buy_pack(
        caller.msisdn, code.upper(), require_key(key), auto_renew, _now(), _cid(), since
    )
    return JSONResponse(jsonable(result), status_code=201)


@me.put("/vas/packs/{code}/auto-renew", responses=errors(404, 409))
async def auto_renew(code: Code, body: AutoRenew, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    since = await _since(request, caller)
    return await _vas(request).set_auto_renew(caller.msisdn, code.upper(), body.enabled, _now(), since)


@me.get("/vas/guard")
async def get_guard(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return await _vas(request).c.guards.get(caller.msisdn, await _since(request, caller))


@me.put("/vas/guard", responses=errors(409))
async def put_guard(body: Guard, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Block subscriptions started outside the app, allow some providers, cap monthly spending."""
    since = await _since(request, caller)
    return await _vas(request).c.guards.set(caller.msisdn, body.model_dump(), _now(), since)


@me.get("/vas/consents")
async def consents(
    caller: CurrentCaller, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    """The consent log, newest first: every request, confirmation, charge, renewal, skip and
    cancellation. Append-only: no endpoint changes it."""
    since = await _since(request, caller)
    return {"items": await _vas(request).consent_log(caller.msisdn, limit, since)}


@me.post("/plan", responses=errors(404, 409))
async def change_plan(body: PlanChange, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Change the tariff plan (within the same billing: prepaid to prepaid, postpaid to postpaid)."""
    since = await _since(request, caller)
    return await _vas(request).plans.change(caller.msisdn, body.plan_code, _now(), _cid(), since)


# -- internal ---------------------------------------------------------------------------------------


@partners.post("/subscriptions", status_code=201, responses=errors(404, 409))
async def external_subscription(
    body: ExternalRequest, request: Request, asker: Annotated[Asker, Depends(_asker)]
) -> JSONResponse:
    """A content provider (its own credential) or a partner web page asks to subscribe a number
    to one of its services. Without the subscriber's guard it starts (and charges) at once; with
    it, it waits for in-app consent. Limited per provider and per number."""
    view = await _vas(request).external_request(
        asker, body.provider, body.msisdn, body.code, body.channel, body.request_ref, _now(), _cid()
    )
    return JSONResponse(jsonable(view), status_code=201)


@ops.put("/catalog", responses=errors(409))
async def import_catalog(body: CatalogImport, request: Request) -> dict[str, int]:
    """Replace the catalogue (services, packs and, if given, plans). Running subscriptions keep
    the price they were started with. Refused when a loyalty reward names a VAS not in it."""
    await _vas(request).catalog.replace(body.vas, body.packs, body.plans)
    return {"services": len(body.vas), "packs": len(body.packs), "plans": len(body.plans)}


@ops.post("/renewals/run")
async def renewal_pass(body: RenewalPass, request: Request) -> dict[str, Any]:
    """One renewal pass now, or at a simulated time for one subscriber (tests, support)."""
    if body.now is not None and body.now > _now() + timedelta(minutes=1) and body.msisdn is None:
        raise ApiError(422, "scope_required", "a pass in the future is for one subscriber: give msisdn")
    return {"stats": await request.app.state.renewals.run_once(body.now, body.msisdn)}
