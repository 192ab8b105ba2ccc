"""The hosted-payment flow: open the signed request, take the card, maybe the OTP, decide, notify.

State transitions are synchronous (no await between check and change), so two concurrent submits
of the same page cannot both complete it: the second finds the stage already moved on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlencode

from vnpay import VN_TZ, Malformed, ResponseCode, TransactionStatus, decode_query, with_signature

from .cards import OTP_CODE, OUTCOME_CODES, CardCheck, check_card
from .journal import Journal
from .metrics import Metrics
from .models import Stage, Transaction
from .notifier import Notifier
from .payment_request import CheckoutError, read_payment_request
from .settings import Settings
from .store import Store
from .switches import SwitchBoard

log = logging.getLogger(__name__)


class Checkout:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        switches: SwitchBoard,
        notifier: Notifier,
        journal: Journal,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._store = store
        self._switches = switches
        self._notifier = notifier
        self._journal = journal
        self._metrics = metrics
        self._clock = clock

    def open(self, query: str) -> Transaction:
        """Accept a signed payment URL's query string. Reopening the same URL resumes the same session."""
        try:
            params = decode_query(query)
        except Malformed as exc:  # a repeated parameter
            raise CheckoutError("03", str(exc)) from None
        try:
            request = read_payment_request(
                params, self._settings.tmn_code, self._settings.secret, self._clock()
            )
        except CheckoutError as error:
            self._metrics.payment_requests_refused.labels(error.code).inc()
            log.warning("payment request refused", extra={"code": error.code, "reason": error.message})
            raise
        existing = self._store.transactions.get(request.txn_ref)
        if existing is not None:
            if existing.fingerprint == request.fingerprint and existing.stage != Stage.DONE:
                return existing
            self._metrics.payment_requests_refused.labels("01").inc()
            raise CheckoutError("01", "Transaction already exists (vnp_TxnRef was used before)", 409)
        txn = Transaction(
            **vars(request),
            session_id=secrets.token_urlsafe(18),
            tmn_code=self._settings.tmn_code,
            opened_at=self._clock(),
        )
        self._store.add(txn)
        self._journal.write("transaction_opened", txn.view())
        log.info("payment page opened", extra={"txn_ref": txn.txn_ref, "amount_vnd": txn.amount_vnd})
        return txn

    def session(self, session_id: str) -> Transaction:
        txn = self._store.sessions.get(session_id)
        if txn is None:
            raise CheckoutError("03", "Payment session not found", 404)
        return txn

    def submit_card(self, session_id: str, form: Mapping[str, str]) -> Transaction:
        """Raises CardRejected when the form needs correcting (the session stays open)."""
        txn = self._at_stage(session_id, Stage.CARD)
        if self._expired(txn):
            return self._complete(txn, ResponseCode.PAYMENT_EXPIRED, "payment window expired")
        check = check_card(form, txn.requested_bank_code, self._clock().astimezone(VN_TZ).date())
        self._remember_card(txn, check)
        code = OUTCOME_CODES[check.card.outcome]
        if check.card.challenge:
            txn.stage, txn.pending_response_code, txn.reason = Stage.CHALLENGE, code, check.card.outcome
            return txn
        return self._complete(txn, code, check.card.outcome)

    def submit_otp(self, session_id: str, otp: str) -> Transaction:
        txn = self._at_stage(session_id, Stage.CHALLENGE)
        if self._expired(txn):
            return self._complete(txn, ResponseCode.PAYMENT_EXPIRED, "payment window expired")
        if not hmac.compare_digest(otp.strip().encode(), OTP_CODE.encode()):
            return self._complete(txn, ResponseCode.WRONG_OTP, "wrong OTP")
        assert txn.pending_response_code is not None
        return self._complete(txn, txn.pending_response_code, txn.reason or "")

    def cancel(self, session_id: str) -> Transaction:
        txn = self.session(session_id)
        if txn.stage == Stage.DONE:
            raise CheckoutError("01", "This payment has already been processed", 409)
        return self._complete(txn, ResponseCode.CUSTOMER_CANCELLED, "cancelled by the customer")

    async def deliver(self, txn: Transaction) -> str:
        """Notify the merchant per the switches, then give the signed return-redirect URL."""
        plan = self._switches.take(txn.txn_ref)
        txn.in_progress_until_notified = plan.query_in_progress
        first_answer = self._notifier.dispatch(txn, plan)
        if first_answer is not None and self._settings.redirect_waits_for_ipn:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_answer.wait(), timeout=self._settings.ipn_timeout_s + 1)
        return self.return_redirect(txn)

    def return_redirect(self, txn: Transaction) -> str:
        """The merchant's return URL plus the signed result (no vnp_NotifyTime: it is not an IPN)."""
        params = with_signature(txn.result_fields(), self._settings.secret)
        separator = "&" if "?" in txn.return_url else "?"
        return f"{txn.return_url}{separator}{urlencode(params)}"

    def _at_stage(self, session_id: str, stage: Stage) -> Transaction:
        txn = self.session(session_id)
        if txn.stage != stage:
            raise CheckoutError("01", "This payment has already been processed", 409)
        return txn

    def _expired(self, txn: Transaction) -> bool:
        return self._clock() >= txn.expires_at

    @staticmethod
    def _remember_card(txn: Transaction, check: CardCheck) -> None:
        txn.masked_card = check.masked
        txn.scheme = check.card.scheme
        txn.card_type = check.card.card_type
        txn.bank_code = check.card.bank_code

    def _complete(self, txn: Transaction, response_code: str, reason: str) -> Transaction:
        txn.stage = Stage.DONE
        txn.response_code = response_code
        txn.status = (
            TransactionStatus.SUCCESS if response_code == ResponseCode.SUCCESS else TransactionStatus.FAILED
        )
        txn.pay_date = self._clock()
        txn.reason = reason
        txn.pending_response_code = None
        # A card attempt gets a provider transaction number; a cancel or timeout reports "0".
        txn.transaction_no = self._store.next_transaction_no() if txn.masked_card else None
        self._metrics.payments.labels(response_code).inc()
        self._journal.write("transaction_completed", txn.view())
        log.info(
            "payment decided",
            extra={
                "txn_ref": txn.txn_ref,
                "response_code": response_code,
                "transaction_no": txn.transaction_no,
                "masked_card": txn.masked_card,
                "reason": reason,
            },
        )
        return txn
