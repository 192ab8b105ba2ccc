"""HTTP API of the VAS service: the catalogue, the subscriber's own services and packs, the
guard and the consent log; internal routes for content providers and operators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mobi_contracts.msisdn import MsisdnInput
from servicekit.auth import CurrentCaller
from servicekit.errors import ApiError
from servicekit.http import internal_callers
from servicekit.idempotency import require_key
from servicekit.logs import correlation_id

from .domain.catalog import AnyItem, Pack, Plan, Vas, item_document, plan_document
from .renewals import Renewals
from .store import CATALOG, PLANS
from .subscriptions import VasService, jsonable

public = APIRouter(prefix="/api/v1/vas", tags=["catalogue"])
me = APIRouter(prefix="/api/v1/me", tags=["my services"])
providers = APIRouter(
    prefix="/internal/v1/vas",
    tags=["internal"],
    dependencies=[Depends(internal_callers("content-provider", "ops"))],
)
ops = APIRouter(prefix="/internal/v1/vas", tags=["internal"], dependencies=[Depends(internal_callers("ops"))])

Code = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{2,16}$", description="service or pack code")]
SubscriptionId = Annotated[str, Path(pattern=r"^sub-[A-Z2-7]{16}$")]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="8-64 chars; reuse it to retry")
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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


class PlanChange(Body):
    plan_code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")


class ExternalRequest(Body):
    msisdn: MsisdnInput
    code: str = Field(pattern=r"^[A-Z0-9_]{2,16}$")
    provider: str = Field(pattern=r"^[a-z0-9-]{2,32}$", description="the content provider asking")
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


def _vas(request: Request) -> VasService:
    service: VasService = request.app.state.vas
    return service


def _now() -> datetime:
    return datetime.now(UTC)


def _cid() -> str:
    return correlation_id.get() or ""


# -- catalogue ------------------------------------------------------------------------------------


@public.get("/catalog")
async def catalog(request: Request) -> dict[str, Any]:
    """Value-added services: code, names, content provider, price, period, how to cancel by SMS."""
    items = (await _vas(request).catalog()).values()
    return {"items": [i.model_dump() | {"period_days": i.period_days} for i in items if isinstance(i, Vas)]}


@public.get("/packs")
async def packs(request: Request) -> dict[str, Any]:
    """Data, voice and roaming packs: price, validity, quota, auto-renewal, who may buy them."""
    items = (await _vas(request).catalog()).values()
    return {"items": [i.model_dump() for i in items if isinstance(i, Pack)]}


@public.get("/plans")
async def plans(request: Request) -> dict[str, Any]:
    return {"items": [p.model_dump() for p in await _vas(request).plans()]}


# -- the subscriber's own -------------------------------------------------------------------------


@me.get("/vas")
async def my_services(
    caller: CurrentCaller, request: Request, include_ended: Annotated[bool, Query(alias="all")] = False
) -> dict[str, Any]:
    """Running subscriptions and packs (`all=true`: also pending, ended and cancelled ones),
    with what they cost this month and how each was started."""
    vas = _vas(request)
    now = _now()
    items = await vas.subscriptions_of(caller.msisdn, now, everything=include_ended)
    return {
        "items": items,
        "spent_this_month_vnd": await vas.month_spend(caller.msisdn, now),
        "guard": await vas.guard(caller.msisdn),
    }


@me.post("/vas/{code}/subscribe", status_code=201)
async def subscribe(
    code: Code, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> JSONResponse:
    """A pending subscription: nothing is charged until it is confirmed (within the window)."""
    body = await _vas(request).subscribe_in_app(caller.msisdn, code.upper(), require_key(key), _now(), _cid())
    return JSONResponse(jsonable(body), status_code=201)


@me.get("/vas/subscriptions/{subscription_id}")
async def subscription(
    subscription_id: SubscriptionId, caller: CurrentCaller, request: Request
) -> dict[str, Any]:
    vas = _vas(request)
    return await vas.state(await vas.one(caller.msisdn, subscription_id), _now())


@me.post("/vas/subscriptions/{subscription_id}/confirm")
async def confirm(subscription_id: SubscriptionId, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return await _vas(request).confirm(caller.msisdn, subscription_id, _now(), _cid())


@me.post("/vas/subscriptions/{subscription_id}/cancel")
async def cancel_one(
    subscription_id: SubscriptionId, caller: CurrentCaller, request: Request
) -> dict[str, Any]:
    vas = _vas(request)
    return await vas.cancel(await vas.one(caller.msisdn, subscription_id), _now(), _cid())


@me.post("/vas/subscriptions/{subscription_id}/skip")
async def skip(subscription_id: SubscriptionId, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Skip the next renewal (the renewal notice's "skip this period")."""
    return await _vas(request).skip(caller.msisdn, subscription_id, _now(), _cid())


@me.post("/vas/subscriptions/{subscription_id}/renew")
async def renew(subscription_id: SubscriptionId, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """The renewal notice's "renew": the renewal goes ahead (recorded in the consent log)."""
    return await _vas(request).renew_ack(caller.msisdn, subscription_id, _now())


@me.post("/vas/cancel-all")
async def cancel_all(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Stop every running service and pack renewal at once."""
    return {"cancelled": await _vas(request).cancel_all(caller.msisdn, _now(), _cid())}


@me.post("/vas/{code}/cancel")
async def cancel_code(code: Code, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Stop a service (or a pack's renewals) by its code: no further charge."""
    return {"cancelled": await _vas(request).cancel_code(caller.msisdn, code.upper(), _now(), _cid())}


@me.post("/vas/packs/{code}/buy", status_code=201)
async def buy_pack(
    code: Code,
    caller: CurrentCaller,
    request: Request,
    body: PackPurchase | None = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Buy a pack: the account service takes the price from the balance (refused when it is
    short) and adds the data bucket; see `GET /api/v1/me/balances`."""
    auto_renew = body.auto_renew if body else None
    result = await _vas(request).buy_pack(
        caller.msisdn, code.upper(), require_key(key), auto_renew, _now(), _cid()
    )
    return JSONResponse(jsonable(result), status_code=201)


@me.put("/vas/packs/{code}/auto-renew")
async def auto_renew(code: Code, body: AutoRenew, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return await _vas(request).set_auto_renew(caller.msisdn, code.upper(), body.enabled, _now(), _cid())


@me.get("/vas/guard")
async def get_guard(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return await _vas(request).guard(caller.msisdn)


@me.put("/vas/guard")
async def put_guard(body: Guard, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Block subscriptions started outside the app, allow some providers, cap monthly spending."""
    return await _vas(request).set_guard(caller.msisdn, body.model_dump(), _now(), _cid())


@me.get("/vas/consents")
async def consents(
    caller: CurrentCaller, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    """The consent log, newest first: every request, confirmation, charge, renewal, skip and
    cancellation. Append-only: no endpoint changes it."""
    return {"items": await _vas(request).consent_log(caller.msisdn, limit)}


@me.post("/plan")
async def change_plan(body: PlanChange, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Change the tariff plan (within the same billing: prepaid to prepaid, postpaid to postpaid)."""
    return await _vas(request).change_plan(caller.msisdn, body.plan_code, _now(), _cid())


# -- internal ---------------------------------------------------------------------------------------


@providers.post("/subscriptions", status_code=201)
async def external_subscription(body: ExternalRequest, request: Request) -> JSONResponse:
    """A content provider or partner web page asks to subscribe a number. Without the
    subscriber's guard it starts (and charges) at once; with it, it waits for in-app consent."""
    view = await _vas(request).external_request(
        provider=body.provider,
        msisdn=body.msisdn,
        code=body.code,
        channel=body.channel,
        request_ref=body.request_ref,
        now=_now(),
        correlation_id=_cid(),
    )
    return JSONResponse(jsonable(view), status_code=201)


@ops.put("/catalog")
async def import_catalog(body: CatalogImport, request: Request) -> dict[str, int]:
    """Replace the catalogue (services, packs and, if given, plans). Running subscriptions keep
    the price they were started with."""
    vas = _vas(request)
    codes = [i.code for i in (*body.vas, *body.packs)]
    if len(set(codes)) != len(codes):
        raise ApiError(422, "duplicate_code", "codes must be unique across services and packs")
    store = vas.store
    await store.delete_where(CATALOG, {})
    every: list[AnyItem] = [*body.vas, *body.packs]
    await store.insert_all(CATALOG, [item_document(i) for i in every])
    if body.plans:
        await store.delete_where(PLANS, {})
        await store.insert_all(PLANS, [plan_document(p) for p in body.plans])
    vas.forget_catalog()
    return {"services": len(body.vas), "packs": len(body.packs), "plans": len(body.plans)}


@ops.post("/renewals/run")
async def renewal_pass(body: RenewalPass, request: Request) -> dict[str, Any]:
    """One renewal pass now, or at a simulated time for one subscriber (tests, support)."""
    if body.now is not None and body.now > _now() + timedelta(minutes=1) and body.msisdn is None:
        raise ApiError(422, "scope_required", "a pass in the future is for one subscriber: give msisdn")
    renewals: Renewals = request.app.state.renewals
    return {"stats": await renewals.run_once(body.now, body.msisdn)}
