"""HTTP API of the stores service: stores, hotlines, the subscriber's feedback, and the
internal catalogue import and ticket replies (operators only)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mobi_contracts.events.stores import FeedbackCategory
from servicekit.api import IdempotencyKey, errors
from servicekit.auth import CurrentCaller
from servicekit.errors import ApiError, not_found
from servicekit.http import internal_callers
from servicekit.idempotency import require_key
from servicekit.logs import correlation_id

from .catalogue import Catalogue
from .domain.catalogue import CatalogueInvalid, StoreServiceCode, parse_csv, parse_json
from .domain.feedback import FeedbackStatus, sanitise
from .domain.geo import in_vietnam_area
from .feedback import FeedbackDesk, decode_cursor
from .hotlines import Hotline
from .settings import StoresSettings

stores = APIRouter(prefix="/api/v1/stores", tags=["stores"])
support = APIRouter(prefix="/api/v1/support", tags=["support"])
me = APIRouter(prefix="/api/v1/me", tags=["feedback"])
internal = APIRouter(
    prefix="/internal/v1", tags=["internal"], dependencies=[Depends(internal_callers("ops"))]
)

MAX_IMPORT_BYTES = 32 * 1024 * 1024
# Public, read-mostly answers: phones and intermediaries may reuse them briefly.
PUBLIC_CACHE = "public, max-age=60"


def _catalogue(request: Request) -> Catalogue:
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def _desk(request: Request) -> FeedbackDesk:
    desk: FeedbackDesk = request.app.state.feedback
    return desk


def _settings(request: Request) -> StoresSettings:
    settings: StoresSettings = request.app.state.settings
    return settings


def _json(body: dict[str, Any], cache_control: dict[str, str]) -> Response:
    """Hot read paths: serialised once with orjson (FastAPI's encoder walks the tree)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=cache_control)


# -- stores ----------------------------------------------------------------------------------


@stores.get("/nearest")
async def nearest(
    request: Request,
    lat: Annotated[float, Query(ge=-90, le=90, description="WGS84 latitude")],
    lon: Annotated[float, Query(ge=-180, le=180, description="WGS84 longitude")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    radius_km: Annotated[float | None, Query(gt=0, description="default 50 km")] = None,
    service: Annotated[StoreServiceCode | None, Query(description="only stores offering it")] = None,
    open_now: Annotated[bool, Query(description="only stores open now (Vietnam time)")] = False,
) -> Response:
    """The nearest stores by great-circle distance, nearest first."""
    settings = _settings(request)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ApiError(422, "invalid_request", "lat and lon must be numbers")
    if not in_vietnam_area(lat, lon):
        raise ApiError(
            422, "outside_vietnam", f"{lat}, {lon} is far outside Vietnam; stores are only in Vietnam"
        )
    radius = radius_km if radius_km is not None else settings.nearest_default_radius_km
    if not math.isfinite(radius) or radius > settings.nearest_max_radius_km:
        raise ApiError(
            422, "invalid_request", f"radius_km must be at most {settings.nearest_max_radius_km:g}"
        )
    snapshot = await _catalogue(request).current()
    now = datetime.now(UTC)
    hits = snapshot.nearest(
        lat, lon, limit=limit, radius_km=radius, now=now, service=service, open_now=open_now
    )
    body = {
        "items": [entry.view(now, distance) for entry, distance in hits],
        "catalogue_version": snapshot.version,
        "radius_km": radius,
    }
    return _json(body, {"Cache-Control": "public, max-age=30"})


@stores.get("/search")
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=100, description="words of a name or address")],
    province: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """Stores by name, address, district or province; accents optional (`ha noi` finds Hà Nội)."""
    snapshot = await _catalogue(request).current()
    total, found = snapshot.search(q, limit=limit, offset=offset, province=province)
    now = datetime.now(UTC)
    body = {"items": [e.view(now) for e in found], "total": total, "catalogue_version": snapshot.version}
    return _json(body, {"Cache-Control": PUBLIC_CACHE})


@stores.get("/{store_id}", responses=errors(404))
async def store_details(
    request: Request, store_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
) -> Response:
    snapshot = await _catalogue(request).current()
    entry = snapshot.by_id.get(store_id)
    if entry is None:
        raise not_found("store")
    return _json(entry.view(datetime.now(UTC)), {"Cache-Control": PUBLIC_CACHE})


# -- support ---------------------------------------------------------------------------------


@support.get("/hotlines")
async def hotlines(request: Request, response: Response) -> dict[str, Any]:
    """The operator's hotlines with a tel: link, whether calls are free, and working hours."""
    lines: list[Hotline] = request.app.state.hotlines
    now = datetime.now(UTC)
    response.headers["Cache-Control"] = PUBLIC_CACHE
    return {"items": [h.view(now) for h in lines]}


# -- feedback --------------------------------------------------------------------------------


def _line(value: str | None) -> str | None:
    return sanitise(value, multiline=False) or None if value is not None else None


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: FeedbackCategory
    text: str = Field(max_length=20_000, description="5-2000 characters once control characters are removed")
    rating: int | None = Field(default=None, ge=1, le=5)
    app_version: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z.+_-]*$")
    device: str | None = Field(default=None, max_length=64)
    screen: str | None = Field(default=None, max_length=64)

    @field_validator("device", "screen")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return _line(value)


@me.post("/feedback", status_code=201, responses={200: {"description": "the same request, retried"}})
async def file_feedback(
    body: FeedbackIn, caller: CurrentCaller, request: Request, response: Response, key: IdempotencyKey = None
) -> dict[str, Any]:
    """Files feedback; answers with its ticket number. Limited per subscriber (429)."""
    settings = _settings(request)
    text = sanitise(body.text)
    if not settings.feedback_min_chars <= len(text) <= settings.feedback_max_chars:
        raise ApiError(
            422,
            "invalid_request",
            f"text: {settings.feedback_min_chars} to {settings.feedback_max_chars} characters "
            f"(after removing control characters; got {len(text)})",
        )
    fields = {**body.model_dump(), "text": text}
    status, ticket = await _desk(request).file(
        caller.msisdn,
        fields,
        key=require_key(key) if key is not None else None,
        correlation_id=correlation_id.get() or "stores",
    )
    response.status_code = status
    return ticket


@me.get("/feedback")
async def my_feedback(
    caller: CurrentCaller,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """My tickets, newest first, with their status and replies (a recycled number's new owner
    sees none of the previous owner's)."""
    after = decode_cursor(cursor) if cursor else None
    return await _desk(request).mine(caller.msisdn, limit, after, caller.owner_since)


# -- internal (operators) --------------------------------------------------------------------


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: FeedbackStatus = "answered"
    reply: str | None = Field(default=None, max_length=4000)
    agent: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")


@internal.post("/feedback/{ticket}/answers", responses=errors(404, 409))
async def answer_ticket(
    body: TicketUpdate, request: Request, ticket: Annotated[str, Path(pattern=r"^GY-[0-9A-Z]{8}$")]
) -> dict[str, Any]:
    """Customer care replies to a ticket and/or changes its status; the subscriber is told
    (FeedbackAnswered)."""
    reply = sanitise(body.reply) if body.reply is not None else None
    if body.reply is not None and not reply:
        raise ApiError(422, "invalid_request", "reply: empty once control characters are removed")
    return await _desk(request).answer(
        ticket,
        reply=reply,
        status=body.status,
        agent=body.agent,
        correlation_id=correlation_id.get() or "ops",
    )


@internal.post("/stores/catalogue", responses=errors(409, 413))
async def import_catalogue(
    request: Request,
    content_type: Annotated[str, Header(alias="Content-Type")] = "application/json",
    source: Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9._ /:-]*$")] = "api",
) -> dict[str, Any]:
    """Replaces the whole catalogue from JSON (a list of stores) or CSV (text/csv). Every row
    is validated first; any bad row refuses the import, naming the row, and the current
    catalogue keeps serving."""
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", f"a catalogue file is at most {MAX_IMPORT_BYTES // 2**20} MB")
    kind: Literal["csv", "json"] = "csv" if content_type.split(";")[0].strip() == "text/csv" else "json"
    try:
        # Validating every row is seconds of CPU for a large file: off the event loop.
        rows = await asyncio.to_thread(parse_csv if kind == "csv" else parse_json, body)
    except CatalogueInvalid as exc:
        raise ApiError(422, "invalid_catalogue", exc.errors[0], errors=exc.errors) from exc
    return await _catalogue(request).import_rows(rows, source or kind)
