"""/sandbox/*: drive payments without a browser, set switches, inspect and reset state.

Test-only surface: a real provider has nothing like it. Bind the sandbox to loopback.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field, SecretStr

from .cards import TEST_CARDS, CardRejected
from .hosted_page import PAYMENT_PATH
from .models import Stage, Transaction
from .payment_request import CheckoutError
from .runtime import Sandbox, SandboxDep
from .switches import SwitchSpec

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


class PayRequest(BaseModel):
    """The same steps as the hosted page, in one call."""

    payment_url: str
    card: SecretStr | None = Field(None, description="test card number; omit only with cancel")
    otp: SecretStr | None = Field(None, description="for cards with a 3-D Secure / OTP step")
    holder: str = "NGUYEN VAN A"
    expiry: str | None = Field(None, description="MM/YY, default: two years ahead")
    cvv: SecretStr = SecretStr("123")
    issue_date: str = "07/15"
    cancel: bool = False

    def form(self) -> dict[str, str]:
        expiry = self.expiry or f"12/{(date.today().year + 2) % 100:02d}"
        return {
            "card_number": self.card.get_secret_value() if self.card else "",
            "card_holder": self.holder,
            "card_expiry": expiry,
            "card_cvv": self.cvv.get_secret_value(),
            "card_issue_date": self.issue_date,
        }


def _fail(status_code: int, code: str, message: str) -> HTTPException:
    return HTTPException(status_code, detail={"error": code, "message": message})


@router.post("/pay")
async def pay(body: PayRequest, sandbox: SandboxDep) -> dict[str, Any]:
    try:
        txn = _run_steps(body, sandbox)
    except CheckoutError as error:
        raise _fail(error.status_code, error.code, error.message) from None
    except CardRejected as rejected:
        raise _fail(422, "card_rejected", str(rejected)) from None
    if txn.stage == Stage.CHALLENGE:
        raise _fail(409, "otp_required", "this card needs the OTP step: pass otp (123456 passes)")
    return_url = await sandbox.checkout.deliver(txn)
    return {
        "txn_ref": txn.txn_ref,
        "transaction_no": txn.transaction_no,
        "response_code": txn.response_code,
        "transaction_status": txn.status,
        "masked_card": txn.masked_card,
        "return_url": return_url,
    }


def _run_steps(body: PayRequest, sandbox: Sandbox) -> Transaction:
    url = urlsplit(body.payment_url)
    if url.path != PAYMENT_PATH:
        raise CheckoutError("03", f"payment_url must point at {PAYMENT_PATH}")
    txn = sandbox.checkout.open(url.query)
    if body.cancel:
        return sandbox.checkout.cancel(txn.session_id)
    if txn.stage == Stage.CARD:
        txn = sandbox.checkout.submit_card(txn.session_id, body.form())
    if txn.stage == Stage.CHALLENGE and body.otp is not None:
        txn = sandbox.checkout.submit_otp(txn.session_id, body.otp.get_secret_value())
    return txn


@router.get("/test-cards")
async def test_cards() -> list[dict[str, Any]]:
    return [
        {
            "number": card.number,
            "scheme": card.scheme,
            "domestic": card.domestic,
            "outcome": card.outcome,
            "otp_step": card.challenge,
            "label": card.label,
        }
        for card in TEST_CARDS
    ]


@router.post("/switches", status_code=201)
async def add_switch(spec: SwitchSpec, sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.switches.add(spec, sandbox.clock()).view()


@router.get("/switches")
async def list_switches(sandbox: SandboxDep) -> list[dict[str, Any]]:
    return [switch.view() for switch in sandbox.switches.all()]


@router.delete("/switches", status_code=204)
async def clear_switches(sandbox: SandboxDep) -> Response:
    sandbox.switches.clear()
    return Response(status_code=204)


@router.delete("/switches/{switch_id}", status_code=204)
async def remove_switch(switch_id: str, sandbox: SandboxDep) -> Response:
    if not sandbox.switches.remove(switch_id):
        raise _fail(404, "not_found", "no such switch")
    return Response(status_code=204)


@router.get("/transactions")
async def list_transactions(sandbox: SandboxDep) -> list[dict[str, Any]]:
    return [txn.view() for txn in sandbox.store.transactions.values()]


@router.get("/transactions/{txn_ref}")
async def get_transaction(txn_ref: str, sandbox: SandboxDep) -> dict[str, Any]:
    txn = _transaction(sandbox, txn_ref)
    notes = sandbox.store.notifications_for(txn_ref)
    return {**txn.view(), "notifications": [{"id": n.id, "kind": n.kind, "status": n.status} for n in notes]}


@router.get("/notifications")
async def list_notifications(sandbox: SandboxDep, txn_ref: str | None = None) -> list[dict[str, Any]]:
    return [record.view() for record in sandbox.store.notifications_for(txn_ref)]


@router.post("/notifications/{txn_ref}/resend")
async def resend(txn_ref: str, sandbox: SandboxDep) -> dict[str, Any]:
    txn = _transaction(sandbox, txn_ref)
    if txn.stage != Stage.DONE:
        raise _fail(409, "not_decided", "the payment has no result yet")
    record = await sandbox.notifier.resend(txn)
    return record.view()


@router.delete("/state", status_code=204)
async def reset(sandbox: SandboxDep) -> Response:
    sandbox.reset()
    return Response(status_code=204)


def _transaction(sandbox: Sandbox, txn_ref: str) -> Transaction:
    txn = sandbox.store.transactions.get(txn_ref)
    if txn is None:
        raise _fail(404, "not_found", "no such transaction")
    return txn
