"""HTTP API of the account service: logins and the subscriber's own account data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from mobi_contracts.msisdn import InvalidMsisdn, MsisdnInput, normalize_msisdn
from servicekit.api import Body, declare_errors, errors
from servicekit.auth import Caller, CurrentCaller, caller_of
from servicekit.errors import ApiError, not_found
from servicekit.http import client_key, internal_callers
from servicekit.logs import correlation_id

from .auth_flow import AuthService, Tokens
from .domain.paging import BadCursor, Cursor
from .domain.provisioning import owner_since_of
from .queries import AccountQueries
from .subscribers import SubscriberRegistry

auth = APIRouter(prefix="/api/v1/auth", tags=["auth"])
me = APIRouter(prefix="/api/v1/me", tags=["account"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])
# Who may call what: payment looks up bills; payment, vas and loyalty check that a number is
# a subscriber; operators provision.
FOR_PAYMENT_AND_OPS = [Depends(internal_callers("payment-service", "ops"))]
FOR_DIRECTORY_READERS = [
    Depends(internal_callers("payment-service", "vas-service", "loyalty-service", "ops"))
]
FOR_OPS = [Depends(internal_callers("ops"))]


# Any Vietnamese mobile number: since number portability (2019) the prefix does not say
# who the operator is; the subscriber directory does (AuthService).
DeviceToken = Annotated[
    str | None,
    Field(
        max_length=200,
        description="the device_token of this phone's last login to the number: a known device "
        "has budgets of its own for codes and tries, which strangers cannot spend",
    ),
]


class OtpRequest(Body):
    msisdn: MsisdnInput = Field(examples=["0901234567"])
    device_token: DeviceToken = None


class OtpVerify(Body):
    msisdn: MsisdnInput
    code: str = Field(pattern=r"^\d{6}$", description="the 6-digit code from the SMS")
    device_token: DeviceToken = None


class PasswordLogin(Body):
    msisdn: MsisdnInput
    password: str = Field(min_length=1, max_length=128)
    device_token: DeviceToken = None


class RefreshRequest(Body):
    refresh_token: str = Field(min_length=20, max_length=200)


class LogoutRequest(Body):
    refresh_token: str | None = Field(default=None, max_length=200)


class NewPassword(Body):
    """A new portal password, with proof that the caller is the subscriber right now."""

    password: str = Field(min_length=10, max_length=128, description="10 to 128 characters")
    current_password: str | None = Field(default=None, min_length=1, max_length=128)
    otp_code: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="a fresh code from POST /api/v1/auth/otp"
    )
    device_token: DeviceToken = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    msisdn: str
    device_token: str = Field(description="keep it on this phone and send it with later logins")


class OtpSent(BaseModel):
    status: Literal["sent"] = "sent"
    expires_in: int
    resend_after: int


class Profile(BaseModel):
    msisdn: str
    name: str
    plan: Literal["prepaid", "postpaid"]
    plan_code: str | None = Field(default=None, description="the tariff plan, once a PlanChanged set one")
    status: str
    member_since: datetime | None = None
    login_method: str


class Money(BaseModel):
    balance_vnd: int


class PromoOut(BaseModel):
    id: str
    name: str
    balance_vnd: int
    expires_at: datetime


class DataOut(BaseModel):
    id: str
    name: str
    remaining_mb: float
    total_mb: float
    expires_at: datetime


class VoiceOut(BaseModel):
    id: str
    name: str
    remaining_minutes: float
    total_minutes: float
    expires_at: datetime


class SmsOut(BaseModel):
    id: str
    name: str
    remaining: int
    total: int
    expires_at: datetime


class BalancesOut(BaseModel):
    msisdn: str
    plan: str
    plan_code: str | None = None
    main: Money
    unbilled_vnd: int | None
    promotions: list[PromoOut]
    data: list[DataOut]
    voice: list[VoiceOut] = Field(default_factory=list, description="call minutes a pack gave")
    sms: list[SmsOut] = Field(default_factory=list, description="messages a pack gave")
    as_of: datetime


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def _auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


def _queries(request: Request) -> AccountQueries:
    queries: AccountQueries = request.app.state.queries
    return queries


def _tokens(t: Tokens) -> TokenResponse:
    return TokenResponse(
        access_token=t.access_token,
        expires_in=t.expires_in,
        refresh_token=t.refresh_token,
        refresh_expires_in=t.refresh_expires_in,
        msisdn=t.msisdn,
        device_token=t.device_token,
    )


# -- auth ------------------------------------------------------------------------------------------


@auth.post("/header-login", response_model=TokenResponse, responses=errors(401, 403))
async def header_login(
    request: Request,
    x_msisdn: Annotated[str | None, Header()] = None,
    x_gateway_key: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    """Automatic login over mobile data: the carrier's proxy adds the number (X-MSISDN);
    the gateway passes it on only from the carrier's address ranges."""
    service = _auth(request)
    if not x_msisdn or not service.gateway_verified(x_gateway_key):
        raise ApiError(
            401, "not_on_carrier_network", "automatic login works over MobiFone mobile data; use OTP on Wi-Fi"
        )
    try:
        msisdn = normalize_msisdn(x_msisdn)
    except InvalidMsisdn as exc:
        # From the carrier's own proxy this is a network fault, not a user's typo.
        raise ApiError(400, "invalid_msisdn", f"the carrier sent no usable number: {exc}") from exc
    return _tokens(await service.header_login(msisdn))


@auth.post("/otp", status_code=status.HTTP_202_ACCEPTED, response_model=OtpSent)
async def request_otp(body: OtpRequest, request: Request) -> OtpSent:
    """Sends a one-time code by SMS (same answer for any MobiFone number)."""
    service = _auth(request)
    resend_after = await service.request_otp(body.msisdn, _client(request), body.device_token)
    return OtpSent(expires_in=service.policy.ttl_seconds, resend_after=resend_after)


@auth.post("/otp/verify", response_model=TokenResponse, responses=errors(401, 403))
async def verify_otp(body: OtpVerify, request: Request) -> TokenResponse:
    return _tokens(
        await _auth(request).verify_otp(body.msisdn, body.code, _client(request), body.device_token)
    )


@auth.post("/password-login", response_model=TokenResponse, responses=errors(401, 403))
async def password_login(body: PasswordLogin, request: Request) -> TokenResponse:
    service = _auth(request)
    return _tokens(
        await service.password_login(body.msisdn, body.password, _client(request), body.device_token)
    )


def _client(request: Request) -> str:
    """Who is asking, for the per-client limits (see servicekit.http.client_key)."""
    return client_key(request, request.app.state.gateway_key)


@auth.post("/refresh", response_model=TokenResponse, responses=errors(401))
async def refresh(body: RefreshRequest, request: Request) -> TokenResponse:
    return _tokens(await _auth(request).refresh(body.refresh_token))


@auth.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(caller: CurrentCaller, request: Request, body: LogoutRequest | None = None) -> Response:
    await _auth(request).logout(caller, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- the subscriber's own data -----------------------------------------------------------------------

Limit = Annotated[int, Query(ge=1, le=100, description="items per page")]
CursorParam = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]


def _cursor(token: str | None) -> Cursor | None:
    if token is None:
        return None
    try:
        return Cursor.decode(token)
    except BadCursor as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc


@me.get("", response_model=Profile)
async def profile(caller: CurrentCaller, request: Request) -> Profile:
    doc = await _queries(request).profile(caller.msisdn)
    return Profile(
        msisdn=caller.msisdn,
        name=doc.get("name", ""),
        plan=doc.get("plan", "prepaid"),
        plan_code=doc.get("plan_code"),
        status=doc.get("status", "active"),
        member_since=doc.get("since"),
        login_method=caller.method,
    )


@declare_errors(401)
async def _caller_with_balances(request: Request) -> Caller:
    # The app's most frequent read: the session check and the cached balances in one round trip.
    return await caller_of(request, _queries(request).balance_cache_keys)


@me.get("/balances", response_model=BalancesOut)
async def balances(
    caller: Annotated[Caller, Depends(_caller_with_balances)], request: Request
) -> ORJSONResponse:
    shown = await _queries(request).balances(caller.msisdn, caller.prefetched)
    # Built by the query, so not validated again (response_model documents it).
    return ORJSONResponse(shown)


@me.get("/charges", response_model=Page)
async def charges(
    caller: CurrentCaller,
    request: Request,
    limit: Limit = 20,
    cursor: CursorParam = None,
    kind: Annotated[Literal["voice", "sms", "data"] | None, Query()] = None,
) -> Page:
    items, next_cursor = await _queries(request).charges(caller, _cursor(cursor), limit, kind)
    return Page(items=[_public(i) for i in items], next_cursor=next_cursor)


@me.get("/topups", response_model=Page)
async def topups(
    caller: CurrentCaller, request: Request, limit: Limit = 20, cursor: CursorParam = None
) -> Page:
    items, next_cursor = await _queries(request).topups(caller, _cursor(cursor), limit)
    return Page(items=[_public(i) for i in items], next_cursor=next_cursor)


@me.get("/bills", response_model=Page)
async def bills(
    caller: CurrentCaller,
    request: Request,
    status_filter: Annotated[Literal["unpaid", "paid"] | None, Query(alias="status")] = None,
) -> Page:
    items = await _queries(request).bills(caller, status_filter)
    return Page(items=[_public(i) for i in items], next_cursor=None)


@me.put("/password", response_model=TokenResponse, responses=errors(403))
async def set_password(body: NewPassword, caller: CurrentCaller, request: Request) -> TokenResponse:
    """Sets the portal password used to log in over Wi-Fi. Proof is required: the current
    password or a fresh one-time code. Every session of the number ends (a stolen session
    cannot keep itself alive by changing the password); the caller gets a new one."""
    tokens = await _auth(request).change_password(
        caller,
        body.password,
        _client(request),
        current_password=body.current_password,
        otp_code=body.otp_code,
        device_token=body.device_token,
    )
    return _tokens(tokens)


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    out = {("id" if k == "_id" else k): v for k, v in doc.items() if k != "msisdn"}
    return out


@internal.get("/bills/{bill_id}", dependencies=FOR_PAYMENT_AND_OPS, responses=errors(404))
async def bill_for_payment(
    request: Request, bill_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
) -> dict[str, Any]:
    """For the payment service: a bill's owner, amount and status."""
    bill = await _queries(request).store["bills"].find_one({"_id": bill_id})
    if bill is None:
        raise not_found("bill")
    return {
        "bill_id": bill["_id"],
        "msisdn": bill["msisdn"],
        "amount_vnd": bill["amount_vnd"],
        "status": bill["status"],
    }


class Provisioning(Body):
    name: str = Field(min_length=1, max_length=100)
    plan: Literal["prepaid", "postpaid"]
    # ported_out: the number moved to another operator (it may still carry our prefix).
    status: Literal["active", "suspended", "terminated", "ported_out"] = "active"
    ported_in: bool = Field(default=False, description="the number came from another operator")


@internal.get("/subscribers/{msisdn}", dependencies=FOR_DIRECTORY_READERS, responses=errors(404))
async def subscriber_status(
    request: Request, msisdn: Annotated[str, Path(pattern=r"^84\d{9}$")]
) -> dict[str, Any]:
    """For other services: is this number a MobiFone subscription (the directory, not the prefix)?"""
    doc = await (
        _queries(request)
        .store["subscribers"]
        .find_one({"_id": msisdn}, {"status": 1, "plan": 1, "since": 1, "owner_since": 1})
    )
    if doc is None:
        raise not_found("subscriber")
    since = doc.get("since")  # the current owner's activation date, for tenure rules (loyalty)
    return {
        "msisdn": msisdn,
        "status": doc.get("status", "active"),
        "plan": doc.get("plan", "prepaid"),
        "since": since.replace(tzinfo=since.tzinfo or UTC).isoformat()
        if isinstance(since, datetime)
        else None,
        "owner_since": owner_since_of(doc).isoformat(),  # records before it are a previous owner's
    }


@internal.put("/subscribers/{msisdn}", status_code=status.HTTP_204_NO_CONTENT, dependencies=FOR_OPS)
async def provision_subscriber(
    body: Provisioning, request: Request, msisdn: Annotated[str, Path(pattern=r"^84\d{9}$")]
) -> Response:
    """From the operator's provisioning (BSS): a subscription created or changed.

    A change of owner (a recycled number: another name) starts a new tenancy: the previous
    owner's sessions end and the portal password is removed, tokens carry the new
    `owner_since` (every service shows the new owner only what was made since), and
    `SubscriberOwnerChanged` tells every service to close what the previous tenancy left.
    A change of status ends every session and is announced too (suspended, reactivated,
    terminated, ported out). Sessions end both before the write (nobody reads the new
    owner's data under an old session) and after it (nobody logged in between keeps one).
    Repeating a request changes nothing and announces nothing (subscribers.py)."""
    registry: SubscriberRegistry = request.app.state.registry
    await registry.provision(msisdn, body.model_dump(), correlation_id.get() or "ops")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class BillIssue(Body):
    msisdn: str = Field(pattern=r"^84\d{9}$")
    period: str = Field(pattern=r"^\d{4}-\d{2}$")
    amount_vnd: int = Field(gt=0, le=100_000_000)
    due_date: date
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


@internal.put("/bills/{bill_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=FOR_OPS)
async def issue_bill(
    body: BillIssue, request: Request, bill_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
) -> Response:
    """From the operator's billing system: a postpaid bill was issued (idempotent by bill id)."""
    doc = body.model_dump() | {
        "status": "unpaid",
        "due_date": datetime.combine(body.due_date, datetime.min.time(), UTC),
        "issued_at": datetime.now(UTC),  # whose tenancy it belongs to (see AccountQueries.bills)
    }
    await _queries(request).store.insert_new("bills", [{"_id": bill_id, **doc}])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
