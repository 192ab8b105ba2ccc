"""HTTP API: the subscriber's devices, preferences and promotions inbox; the campaign
teams' publish endpoint and delivery stats (internal)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import ConfigDict, Field, field_validator, model_validator

from mobi_contracts.events.notify import PROMOTION_ID, PromotionPublished, PromotionPublishedData
from mobi_contracts.topics import PROMOTIONS
from servicekit.api import Body, errors
from servicekit.auth import CurrentCaller
from servicekit.errors import ApiError
from servicekit.http import internal_callers
from servicekit.kafka.publisher import EventPublisher
from servicekit.logs import correlation_id
from servicekit.mongo import Store

from .directory import Directory, Preferences
from .domain.quiet import format_hhmm, parse_hhmm
from .promotions import Inbox
from .stats import campaign_stats
from .store import DEVICES
from .store import PROMOTIONS as PROMOTIONS_COLLECTION

me = APIRouter(prefix="/api/v1/me", tags=["notifications"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])

DeviceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
PromotionId = Annotated[str, Path(pattern=PROMOTION_ID)]
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
# FCM registration tokens: ~150-250 URL-safe characters; APNs device tokens: 64 hex digits.
TOKEN_PATTERNS = {"fcm": re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$"), "apns": re.compile(r"^[0-9a-fA-F]{64}$")}


class DeviceIn(Body):
    platform: Literal["fcm", "apns"] = Field(description="fcm (Android) or apns (iOS)")
    token: str = Field(min_length=20, max_length=4096, description="the provider's registration/device token")
    app_version: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z.+-]+$")
    locale: str | None = Field(default=None, max_length=16, pattern=r"^[a-zA-Z]{2}([-_][a-zA-Z]{2})?$")

    @model_validator(mode="after")
    def _token_fits_platform(self) -> DeviceIn:
        if not TOKEN_PATTERNS[self.platform].match(self.token):
            raise ValueError(f"token is not a valid {self.platform} token")
        return self


class QuietHours(Body):
    start: str = Field(pattern=HHMM, description="HH:MM, Vietnam time", examples=["22:00"])
    end: str = Field(pattern=HHMM, description="HH:MM, Vietnam time", examples=["07:00"])

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self


class PreferencesIn(Body):
    marketing_opt_out: bool = False
    quiet_hours: QuietHours | None = None
    language: Literal["vi", "en"] | None = None


def _prefs_view(p: Preferences) -> dict[str, Any]:
    quiet = None
    if p.quiet_start is not None and p.quiet_end is not None:
        quiet = {
            "start": format_hhmm(p.quiet_start),
            "end": format_hhmm(p.quiet_end),
            "timezone": "Asia/Ho_Chi_Minh",
        }
    return {"marketing_opt_out": p.marketing_opt_out, "quiet_hours": quiet, "language": p.language}


def _device_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "platform": doc["platform"],
        "app_version": doc.get("app_version"),
        "locale": doc.get("locale"),
        "registered_at": doc["registered_at"],
    }


def _directory(request: Request) -> Directory:
    directory: Directory = request.app.state.directory
    return directory


def _inbox(request: Request) -> Inbox:
    inbox: Inbox = request.app.state.inbox
    return inbox


# -- the subscriber -------------------------------------------------------------------------


@me.post("/devices", status_code=status.HTTP_201_CREATED, responses=errors(409))
async def register_device(body: DeviceIn, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """Register this phone for pushes. A token registered again (after a reinstall, or by
    another subscriber on a handed-down phone) now belongs to this subscriber only; it is
    stamped with the caller's tenancy (a recycled number's next owner never sees it)."""
    directory = _directory(request)
    mine = await directory.current_devices(caller.msisdn, caller.owner_since)
    limit: int = request.app.state.max_devices
    if len(mine) >= limit and all(d["token"] != body.token for d in mine):
        raise ApiError(409, "too_many_devices", f"at most {limit} devices; remove one first")
    doc = await directory.register(
        caller.msisdn,
        body.platform,
        body.token,
        body.app_version,
        body.locale,
        datetime.now(UTC),
        caller.owner_since,
    )
    return _device_view(doc)


@me.get("/devices")
async def list_devices(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """My devices (none a previous owner of the number registered)."""
    devices = await _directory(request).current_devices(caller.msisdn, caller.owner_since)
    return {"items": [_device_view(d) for d in devices]}


@me.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def remove_device(device_id: DeviceId, caller: CurrentCaller, request: Request) -> Response:
    if not await _directory(request).remove(caller.msisdn, device_id):
        raise ApiError(404, "not_found", "no such device")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@me.get("/notification-preferences")
async def get_preferences(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    return _prefs_view(await _directory(request).preferences(caller.msisdn, caller.owner_since))


@me.put("/notification-preferences")
async def put_preferences(body: PreferencesIn, caller: CurrentCaller, request: Request) -> dict[str, Any]:
    prefs = Preferences(
        marketing_opt_out=body.marketing_opt_out,
        quiet_start=parse_hhmm(body.quiet_hours.start) if body.quiet_hours else None,
        quiet_end=parse_hhmm(body.quiet_hours.end) if body.quiet_hours else None,
        language=body.language,
    )
    await _directory(request).save_preferences(caller.msisdn, prefs, datetime.now(UTC), caller.owner_since)
    return _prefs_view(prefs)


@me.get("/promotions")
async def my_promotions(caller: CurrentCaller, request: Request) -> dict[str, Any]:
    """The active promotions targeted at me, newest first."""
    items = await _inbox(request).for_subscriber(caller.msisdn, caller.owner_since)
    return {"items": items, "unread": sum(1 for i in items if not i["read"])}


@me.post("/promotions/{promotion_id}/read", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def read_promotion(promotion_id: PromotionId, caller: CurrentCaller, request: Request) -> Response:
    inbox = _inbox(request)
    if not await inbox.is_listed_for(caller.msisdn, promotion_id):
        raise ApiError(404, "not_found", "no such promotion in your inbox")
    await inbox.mark_read(caller.msisdn, promotion_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- campaign teams (internal) ------------------------------------------------------------------


class PromotionIn(PromotionPublishedData):
    """The PromotionPublished event's data (contracts/events/notify.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("valid_until")
    @classmethod
    def _not_over(cls, value: datetime) -> datetime:
        if value <= datetime.now(UTC):
            raise ValueError("valid_until is in the past")
        return value


@internal.post(
    "/promotions",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(internal_callers("campaign-tools", "ops"))],
)
async def publish_promotion(body: PromotionIn, request: Request) -> dict[str, Any]:
    """Publishes `PromotionPublished` on promotions.v1, as a campaign team's producer would;
    the fan-out starts when notify consumes it. Publishing the same id again is harmless."""
    publisher: EventPublisher = request.app.state.publisher
    event = PromotionPublished.create(
        data=PromotionPublishedData.model_validate(body.model_dump()),
        producer="notify-service",
        correlation_id=correlation_id.get() or uuid.uuid4().hex,
    )
    try:
        await publisher.publish(PROMOTIONS.name, [event])
    except Exception as exc:  # the broker is down or slow: the caller retries (same id: harmless)
        raise ApiError(503, "unavailable", "could not publish the promotion; retry") from exc
    return {"promotion_id": body.promotion_id, "event_id": str(event.event_id), "topic": PROMOTIONS.name}


@internal.get(
    "/promotions/{promotion_id}/stats", dependencies=[Depends(internal_callers("campaign-tools", "ops"))]
)
async def promotion_stats(promotion_id: PromotionId, request: Request) -> dict[str, Any]:
    """Targeted, sent, failed, deferred, pruned devices and progress, while it runs and after."""
    store: Store = request.app.state.store
    promotion = await store[PROMOTIONS_COLLECTION].find_one({"_id": promotion_id})
    if promotion is None:
        raise ApiError(404, "not_found", "no such promotion (not published, or not consumed yet)")
    return await campaign_stats(store, promotion)


@internal.get("/devices/count", dependencies=[Depends(internal_callers("ops"))])
async def device_count(request: Request) -> dict[str, int]:
    store: Store = request.app.state.store
    return {"devices": await store[DEVICES].estimated_document_count()}
