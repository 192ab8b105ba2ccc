"""HTTP API of the payment service: card top-ups, bill payments, scratch cards, the
provider's notifications and return page, and an internal card-batch import."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

import vnpay
from mobi_contracts.msisdn import MsisdnInput
from servicekit.api import Body, IdempotencyKey, errors
from servicekit.auth import CurrentCaller
from servicekit.errors import ApiError
from servicekit.http import client_address, client_key, internal_callers
from servicekit.idempotency import require_key
from servicekit.logs import correlation_id

from .payments import Method, PaymentService, Started
from .scratch import ScratchCards

me = APIRouter(prefix="/api/v1/me", tags=["payments"])
provider = APIRouter(prefix="/api/v1/payments/provider", tags=["provider"])
internal = APIRouter(
    prefix="/internal/v1", tags=["internal"], dependencies=[Depends(internal_callers("ops"))]
)

CARD_METHODS: dict[str, Method] = {"international": "card_international", "domestic": "card_domestic"}


class CardTopup(Body):
    amount_vnd: int = Field(strict=True, description="whole đồng", examples=[100000])
    method: Literal["international", "domestic"] = Field(
        description="international credit/debit card or domestic ATM card"
    )
    target_msisdn: MsisdnInput | None = Field(
        default=None, description="top up another MobiFone subscription (ported-in numbers included)"
    )


class BillPayment(Body):
    method: Literal["international", "domestic"]


class ScratchCardTopup(Body):
    serial: str = Field(pattern=r"^\d{10,15}$")
    pin: str = Field(pattern=r"^\d{12,15}$")
    target_msisdn: MsisdnInput | None = None


class PaymentStarted(BaseModel):
    payment_id: str
    kind: str
    status: str
    amount_vnd: int
    payment_url: str
    expires_at: datetime


class ScratchCardAccepted(BaseModel):
    topup_id: str
    amount_vnd: int
    target_msisdn: str
    status: Literal["accepted"]


class PaymentView(BaseModel):
    """A payment as its payer sees it (fields without a value are left out)."""

    payment_id: str
    kind: Literal["topup", "bill"]
    status: Literal["pending", "succeeded", "failed", "expired"]
    amount_vnd: int
    method: str | None = None
    target_msisdn: str | None = None
    bill_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    settled_at: datetime | None = None


class IpnAnswerBody(BaseModel):
    """What the provider reads: 00 or 02 ends its retries."""

    RspCode: str
    Message: str


class CardBatch(Body):
    batch_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    cards: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


def _payments(request: Request) -> PaymentService:
    service: PaymentService = request.app.state.payments
    return service


def _cards(request: Request) -> ScratchCards:
    cards: ScratchCards = request.app.state.scratch_cards
    return cards


def _client_ip(request: Request) -> str:
    address = client_address(request, request.app.state.gateway_key)
    return address if address != "unknown" else "127.0.0.1"


def _client(request: Request) -> str:
    return client_key(request, request.app.state.gateway_key)


def _answer(started: Started) -> JSONResponse:
    return JSONResponse(started.body, status_code=started.status_code)


@me.post("/topups/card", status_code=201, response_model=PaymentStarted, responses=errors(409))
async def card_topup(
    body: CardTopup, caller: CurrentCaller, request: Request, key: IdempotencyKey = None
) -> JSONResponse:
    """Starts a card top-up: answer with the provider's payment page to send the user to."""
    started = await _payments(request).start_topup(
        payer=caller.msisdn,
        key=require_key(key),
        amount_vnd=body.amount_vnd,
        method=CARD_METHODS[body.method],
        target=body.target_msisdn,
        client_ip=_client_ip(request),
        correlation_id=correlation_id.get() or "",
    )
    return _answer(started)


@me.post("/bills/{bill_id}/pay", status_code=201, response_model=PaymentStarted, responses=errors(404, 409))
async def pay_bill(
    body: BillPayment,
    caller: CurrentCaller,
    request: Request,
    bill_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    key: IdempotencyKey = None,
) -> JSONResponse:
    started = await _payments(request).start_bill_payment(
        payer=caller.msisdn,
        key=require_key(key),
        bill_id=bill_id,
        method=CARD_METHODS[body.method],
        client_ip=_client_ip(request),
        correlation_id=correlation_id.get() or "",
    )
    return _answer(started)


@me.post("/topups/scratch-card", status_code=201, response_model=ScratchCardAccepted, responses=errors(409))
async def scratch_card_topup(
    body: ScratchCardTopup, caller: CurrentCaller, request: Request
) -> dict[str, Any]:
    if body.target_msisdn and body.target_msisdn != caller.msisdn:
        await _payments(request).require_subscriber(body.target_msisdn)
    return await _cards(request).redeem(
        payer=caller.msisdn,
        serial=body.serial,
        pin=body.pin,
        target=body.target_msisdn,
        client=_client(request),
        correlation_id=correlation_id.get() or "",
    )


@me.get(
    "/payments/{payment_id}",
    response_model=PaymentView,
    response_model_exclude_none=True,
    responses=errors(404),
)
async def payment_status(
    caller: CurrentCaller, request: Request, payment_id: Annotated[str, Path(pattern=r"^[A-Z0-9]{6,40}$")]
) -> dict[str, Any]:
    """A payment's status, to its payer only."""
    return await _payments(request).status_for(caller.msisdn, payment_id, caller.owner_since)


@provider.get("/ipn", operation_id="provider_notification_get", response_model=IpnAnswerBody)
@provider.post("/ipn", operation_id="provider_notification_post", response_model=IpnAnswerBody)
async def provider_notification(request: Request) -> Response:
    """The provider's signed server-to-server notification (VNPay IPN). Always 200 with
    {"RspCode", "Message"}: the provider retries until RspCode is 00 or 02."""
    try:
        raw = await request.body() if request.method == "POST" else request.url.query.encode()
        params = vnpay.decode_query(raw)
    except (vnpay.InvalidMessage, UnicodeDecodeError) as exc:
        answer = vnpay.IpnAnswer.for_error(
            exc if isinstance(exc, vnpay.InvalidMessage) else vnpay.Malformed("bad encoding")
        )
        return Response(answer.to_json(), media_type="application/json")
    answer = await _payments(request).on_notification(params)
    return Response(answer.to_json(), media_type="application/json")


@provider.get(
    "/return",
    response_class=HTMLResponse,
    responses={400: {"description": "the result is not the provider's", "content": {"text/html": {}}}},
)
async def provider_return(request: Request) -> HTMLResponse:
    """Where the provider sends the browser back. Shows the status we hold; never settles."""
    try:
        returned = _payments(request).provider.read_return(vnpay.decode_query(request.url.query))
    except vnpay.InvalidMessage:
        return HTMLResponse(
            _page("Không xác thực được kết quả thanh toán", "Invalid payment result."),
            status_code=400,
            headers=PAGE_HEADERS,
        )
    payment = await _payments(request).current(returned.txn_ref)
    state = payment["status"] if payment else "unknown"
    titles = {
        "succeeded": "Thanh toán thành công",
        "failed": "Thanh toán không thành công",
        "pending": "Đang xử lý",
    }
    return HTMLResponse(
        _page(titles.get(state, "Đang xử lý"), f"Payment {html.escape(returned.txn_ref)}: {state}"),
        headers=PAGE_HEADERS,
    )


# The page is static text: no script, style, frame, form or plug-in may run in it, and it may
# not be framed by another site (the browser arrives from the provider's page).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(title: str, detail: str) -> str:
    return (
        f"<!doctype html><html lang=vi><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<body><h1>{html.escape(title)}</h1><p>{detail}</p>"
        "<p>Quay lại ứng dụng My MobiFone.</p></body></html>"
    )


@internal.post("/scratch-cards/batches", status_code=status.HTTP_201_CREATED)
async def import_cards(batch: CardBatch, request: Request) -> dict[str, int]:
    cards = []
    for card in batch.cards:
        try:
            cards.append(
                {
                    "serial": str(card["serial"]),
                    "pin": str(card["pin"]),
                    "face_value_vnd": int(card["face_value_vnd"]),
                    "expires_at": datetime.fromisoformat(str(card["expires_at"])),
                }
            )
        except (KeyError, ValueError) as exc:
            raise ApiError(
                422, "invalid_request", f"card needs serial, pin, face_value_vnd, expires_at: {exc}"
            ) from exc
    return {"imported": await _cards(request).import_batch(batch.batch_id, cards)}
