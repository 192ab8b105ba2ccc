"""The customer-facing pages: /paymentv2/vpcpay.html and the form posts behind it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vnpay import Malformed, decode_query

from . import pages
from .cards import CardRejected
from .models import Stage, Transaction
from .payment_request import CheckoutError
from .runtime import Sandbox, SandboxDep

router = APIRouter()

PAYMENT_PATH = "/paymentv2/vpcpay.html"
MAX_FORM_BYTES = 8 * 1024
# The page handles card data: never cache it, never frame it, load nothing from elsewhere.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


def _html(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=PAGE_HEADERS)


def _error(error: CheckoutError) -> HTMLResponse:
    return _html(pages.error_page(error.code, error.message), error.status_code)


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body, refusing other content types, oversize bodies and repeated fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise CheckoutError("03", "Expected an application/x-www-form-urlencoded form", 415)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CheckoutError("03", "Form too large", 413)
    try:
        return decode_query(body)
    except (Malformed, UnicodeDecodeError) as exc:
        raise CheckoutError("03", f"Unreadable form: {exc}") from None


async def _next_step(sandbox: Sandbox, txn: Transaction) -> Response:
    if txn.stage == Stage.CHALLENGE:
        return _html(pages.otp_page(txn))
    redirect = await sandbox.checkout.deliver(txn)
    return RedirectResponse(redirect, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(PAYMENT_PATH, response_class=HTMLResponse)
async def open_payment(request: Request, sandbox: SandboxDep) -> Response:
    try:
        txn = sandbox.checkout.open(request.url.query)
    except CheckoutError as error:
        return _error(error)
    return _html(pages.otp_page(txn) if txn.stage == Stage.CHALLENGE else pages.payment_page(txn))


@router.post("/paymentv2/checkout/{session_id}", response_class=HTMLResponse)
async def submit_card(session_id: str, request: Request, sandbox: SandboxDep) -> Response:
    try:
        form = await read_form(request)
        txn = sandbox.checkout.submit_card(session_id, form)
    except CardRejected as rejected:
        return _html(pages.payment_page(sandbox.checkout.session(session_id), str(rejected)), 422)
    except CheckoutError as error:
        return _error(error)
    return await _next_step(sandbox, txn)


@router.post("/paymentv2/checkout/{session_id}/otp", response_class=HTMLResponse)
async def submit_otp(session_id: str, request: Request, sandbox: SandboxDep) -> Response:
    try:
        form = await read_form(request)
        txn = sandbox.checkout.submit_otp(session_id, form.get("otp", ""))
    except CheckoutError as error:
        return _error(error)
    return await _next_step(sandbox, txn)


@router.post("/paymentv2/checkout/{session_id}/cancel", response_class=HTMLResponse)
async def cancel(session_id: str, sandbox: SandboxDep) -> Response:
    try:
        txn = sandbox.checkout.cancel(session_id)
    except CheckoutError as error:
        return _error(error)
    return await _next_step(sandbox, txn)
