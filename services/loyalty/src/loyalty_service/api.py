"""HTTP API of the loyalty service (Kết Nối Dài Lâu): membership, points, transfers,
redemptions, partner offers and E-codes, member cards; internal routes for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, Field, field_validator

from mobi_contracts.msisdn import MsisdnInput
from servicekit.api import Body, IdempotencyKey, errors, jsonable
from servicekit.auth import CurrentCaller
from servicekit.errors import ApiError, unavailable
from servicekit.http import internal_callers
from servicekit.idempotency import require_key
from servicekit.logs import correlation_id

from .domain.rules import CATALOGUE
from .domain.wallet import Refused
from .jobs import Schedules
from .ledger import Contended
from .offers import Offers
from .programme import Programme
from .redemptions import Redemptions

me = APIRouter(prefix="/api/v1/me/loyalty", tags=["loyalty"])
public = APIRouter(prefix="/api/v1/loyalty", tags=["loyalty"])
internal = APIRouter(
    prefix="/internal/v1/loyalty", tags=["internal"], dependencies=[Depends(internal_callers("ops"))]
)

MAX_POINTS = 1_000_000_000  # beyond any balance: bigger numbers are a client bug


class TransferRequest(Body):
    to_msisdn: MsisdnInput = Field(description="an enrolled member", examples=["0901234567"])
    points: int = Field(strict=True, gt=0, le=MAX_POINTS, description="whole points", examples=[100])


class RedemptionRequest(Body):
    catalog_code: str = Field(pattern=r"^[A-Z0-9-]{1,64}$", examples=["DATA-2GB-7D"])


class Address(Body):
    recipient_name: str = Field(min_length=1, max_length=100)
    phone: MsisdnInput
    street: str = Field(min_length=1, max_length=200)
    ward: str = Field(min_length=1, max_length=100)
    district: str = Field(min_length=1, max_length=100)
    province: str = Field(min_length=1, max_length=100)


class CardRequest(Body):
    address: Address


class OfferImport(Body):
    partner: str = Field(min_length=1, max_length=100)
    category: Literal["restaurant", "shopping", "travel", "entertainment", "health", "education"]
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=1000)
    min_tier: Literal["member", "silver", "gold", "diamond"] = "member"
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    codes: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{4,64}$")]] = Field(
        min_length=1, max_length=10_000
    )

    @field_validator("valid_to")
    @classmethod
    def _after_start(cls, value: datetime, info: Any) -> datetime:
        start = info.data.get("valid_from")
        if start is not None and value <= start:
            raise ValueError("valid_to must be after valid_from")
        return value


class CardStatus(Body):
    status: Literal["received", "printing", "shipped", "delivered", "cancelled"]


class JobRun(Body):
    now: AwareDatetime = Field(description="the time the job runs as (tests, back-dated runs)")


def _programme(request: Request) -> Programme:
    programme: Programme = request.app.state.programme
    return programme


def _redemptions(request: Request) -> Redemptions:
    redemptions: Redemptions = request.app.state.redemptions
    return redemptions


def _offers(request: Request) -> Offers:
    offers: Offers = request.app.state.offers
    return offers


def _cid() -> str:
    return correlation_id.get() or ""


async def _guarded(work: Any) -> Any:
    """Rule refusals are 422s with their code; contention is a 503 to retry."""
    try:
        return await work
    except Refused as exc:
        raise ApiError(422, exc.code, exc.message, **exc.extra) from exc
    except Contended as exc:
        raise unavailable("too many changes of these points at once; retry") from exc


@me.post(
    "/enroll",
    responses={200: {"description": "already a member"}, 201: {"description": "enrolled"}, **errors(422)},
)
async def enroll(caller: CurrentCaller, request: Request) -> JSONResponse:
    """Join the programme (idempotent): eligibility by the subscription's status and tenure."""
    summary, created = await _guarded(_programme(request).enroll(caller.msisdn, _cid(), caller.owner_since))
    return JSONResponse(jsonable(summary), status_code=201 if created else 200)


@me.get("", responses=errors(404))
async def membership(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Tier, points, points expiring and when, tier progress and the tier's privileges."""
    result: dict[str, Any] = await _programme(request).summary(caller.msisdn, caller.owner_since)
    return result


@me.get("/history", responses=errors(404))
async def history(
    caller: CurrentCaller,
    request: Request,
    before: Annotated[
        int | None, Query(ge=1, le=10**12, description="next_before of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Every change of the points, newest first; the points of all of them add up to the balance."""
    result: dict[str, Any] = await _programme(request).history(
        caller.msisdn, before, limit, caller.owner_since
    )
    return result


@me.post("/transfers", status_code=201, responses=errors(404, 409, 422))
async def transfer(
    body: TransferRequest, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Send points to another member (limits per transfer and per day; the recipient is told)."""
    result: dict[str, Any] = await _guarded(
        _programme(request).transfer(
            caller.msisdn, body.to_msisdn, body.points, require_key(key), _cid(), caller.owner_since
        )
    )
    return result


@me.post("/redemptions", status_code=202, responses=errors(404, 409, 422))
async def redeem(
    body: RedemptionRequest, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Convert points into airtime, data or a VAS: taken now, granted by the owning service
    (status pending → granted, or refused with the points given back)."""
    result: dict[str, Any] = await _guarded(
        _redemptions(request).redeem(
            caller.msisdn, body.catalog_code, require_key(key), _cid(), caller.owner_since
        )
    )
    return result


@me.get("/redemptions/{redemption_id}", responses=errors(404))
async def redemption(
    caller: CurrentCaller, request: Request, redemption_id: Annotated[str, Path(pattern=r"^rdm[0-9a-f]{20}$")]
) -> dict[str, Any]:
    result: dict[str, Any] = await _redemptions(request).redemption(
        caller.msisdn, redemption_id, caller.owner_since
    )
    return result


@me.post(
    "/offers/{offer_id}/ecode",
    responses={200: {"description": "already yours"}, **errors(403, 404, 409)},
)
async def claim_ecode(
    caller: CurrentCaller, request: Request, offer_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
) -> JSONResponse:
    """A partner offer's E-code for the member (one per member and offer, while codes last)."""
    code, created = await _offers(request).claim_code(caller.msisdn, offer_id, _cid(), caller.owner_since)
    return JSONResponse(jsonable(code), status_code=201 if created else 200)


@me.get("/ecodes")
async def my_ecodes(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return {"items": await _offers(request).my_codes(caller.msisdn, caller.owner_since)}


@me.post(
    "/card-requests",
    responses={200: {"description": "the same request, retried"}, **errors(404, 409, 422)},
)
async def request_card(
    body: CardRequest, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> JSONResponse:
    """A physical member card sent to the address (one open request at a time)."""
    card, created = await _offers(request).request_card(
        caller.msisdn, body.address.model_dump(), require_key(key), _cid(), caller.owner_since
    )
    return JSONResponse(jsonable(card), status_code=201 if created else 200)


@me.get("/card-requests")
async def my_card_requests(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return {"items": await _offers(request).my_cards(caller.msisdn, caller.owner_since)}


@public.get("/offers")
async def offers(
    request: Request,
    category: Annotated[str | None, Query(pattern=r"^[a-z]{1,32}$")] = None,
) -> dict[str, Any]:
    """Partner offers open now (restaurants, shops, travel, …)."""
    return {"items": await _offers(request).list_offers(category)}


@public.get("/catalogue")
async def catalogue() -> dict[str, Any]:
    """What points can be redeemed for."""
    return {"items": [vars(item) for item in CATALOGUE.values()]}


# -- operators --------------------------------------------------------------------------------


@internal.put("/offers/{offer_id}")
async def import_offer(
    body: OfferImport, request: Request, offer_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
) -> dict[str, int]:
    """A partner offer and its pool of E-codes (idempotent; more codes can be added later)."""
    offer = {"_id": offer_id, **body.model_dump(exclude={"codes"})}
    added = await _offers(request).add_offer(offer, body.codes)
    return {"added_codes": added}


@internal.put("/card-requests/{request_id}", responses=errors(404))
async def card_progress(
    body: CardStatus, request: Request, request_id: Annotated[str, Path(pattern=r"^card[0-9a-f]{20}$")]
) -> dict[str, Any]:
    result: dict[str, Any] = await _offers(request).set_card_status(request_id, body.status)
    return result


@internal.post("/jobs/run", responses=errors(409))
async def run_job(body: JobRun, request: Request) -> dict[str, int]:
    """Expiry, tenure points and tier recompute as of `now` (normally hourly, by itself), under
    the scheduled job's lease. Running it again for the same `now` changes nothing."""
    schedules: Schedules = request.app.state.schedules
    report = await _guarded(schedules.run_now(body.now))
    if report is None:
        raise ApiError(409, "job_running", "the programme job is running; retry when it has finished")
    return dict(vars(report))
