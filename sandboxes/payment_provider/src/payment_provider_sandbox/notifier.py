"""Delivers IPNs to the merchant: signed, re-stamped on every retry, retried until RspCode 00/02.

Switches (see switches.py) bend the delivery on purpose: copies, delays, forged or stale
injections, contradicting failures, and swapping the order of two payments' notifications.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vnpay import (
    NOTIFY_TIME,
    SECURE_HASH,
    IpnAnswer,
    ResponseCode,
    TransactionStatus,
    format_vnp_time,
    sign,
    with_signature,
)

from .ipn_client import Answer, IpnClient, TransportError
from .journal import Journal
from .metrics import Metrics
from .models import Attempt, Delivery, Kind, NotificationRecord, Transaction
from .settings import Settings
from .store import Store
from .switches import DeliveryPlan

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ParamsFactory = Callable[[], dict[str, str]]
WRONG_AMOUNT_DELTA_VND = 1_000  # the tampered-amount IPN claims this much more than was paid


@dataclass(frozen=True)
class _Prepared:
    injections: list[tuple[NotificationRecord, ParamsFactory]]
    primary: NotificationRecord | None  # None: the genuine IPN is not sent (then_genuine=False)
    copies: list[NotificationRecord]
    contradiction: NotificationRecord | None


class Notifier:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        journal: Journal,
        metrics: Metrics,
        http: IpnClient,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._journal = journal
        self._metrics = metrics
        self._http = http
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: list[tuple[Transaction, NotificationRecord]] = []

    # -- entry points -------------------------------------------------------------------------

    def dispatch(self, txn: Transaction, plan: DeliveryPlan) -> asyncio.Event | None:
        """Start notifying about a decided transaction.

        Returns an event set once the first genuine attempt has been answered (or failed), or None
        when the browser redirect should not wait: dropped, delayed or held notifications.
        """
        if plan.drop:
            log.info("ipn dropped by switch", extra={"txn_ref": txn.txn_ref})
            self._journal.write("notification_dropped", {"txn_ref": txn.txn_ref})
            return None
        if plan.out_of_order == "swap_with_next":
            record = self._record(txn, Kind.GENUINE, retries=True)
            record.status = Delivery.HELD
            self._held.append((txn, record))
            return None
        first_answer = asyncio.Event()
        self._spawn(self._run_plan(txn, plan, self._prepare(txn, plan), first_answer))
        return None if plan.delay_s else first_answer

    async def resend(self, txn: Transaction) -> NotificationRecord:
        """Send the current result again (fresh stamp, full retries); a held notification is released
        instead. Returns once the first attempt has been answered."""
        record = self._unhold(txn.txn_ref) or self._record(txn, Kind.RESEND, retries=True)
        first_answer = asyncio.Event()
        self._spawn(self._deliver_current(record, txn, first_answer))
        await first_answer.wait()
        return record

    def cancel_all(self) -> None:
        """Stop every delivery in progress (state reset, shutdown)."""
        for task in self._tasks:
            task.cancel()
        for record in self._store.notifications:
            if record.status in (Delivery.PENDING, Delivery.HELD):
                record.status = Delivery.CANCELLED
        self._held.clear()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        self.cancel_all()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- plans --------------------------------------------------------------------------------

    def _prepare(self, txn: Transaction, plan: DeliveryPlan) -> _Prepared:
        """Create every record up front, in sending order, so a delayed plan is visible at once."""
        injections: list[tuple[NotificationRecord, ParamsFactory]] = []
        if plan.tamper == "signature":
            forged = functools.partial(self._forged_signature, txn)
            injections.append((self._record(txn, Kind.TAMPERED_SIGNATURE, retries=False), forged))
        elif plan.tamper == "amount":
            wrong = functools.partial(self._wrong_amount, txn)
            injections.append((self._record(txn, Kind.TAMPERED_AMOUNT, retries=False), wrong))
        if plan.stale_age_s is not None:
            stale = functools.partial(self._stale, txn, plan.stale_age_s)
            injections.append((self._record(txn, Kind.STALE, retries=False), stale))
        if plan.has_injection and not plan.then_genuine:
            return _Prepared(injections, None, [], None)
        primary = self._record(txn, Kind.GENUINE, retries=True)
        copies = [self._record(txn, Kind.DUPLICATE, retries=False) for _ in range(plan.copies - 1)]
        contradicts = plan.out_of_order == "failure_after_success" and txn.succeeded
        contradiction = self._record(txn, Kind.CONTRADICTING_FAILURE, retries=False) if contradicts else None
        return _Prepared(injections, primary, copies, contradiction)

    async def _run_plan(
        self, txn: Transaction, plan: DeliveryPlan, prepared: _Prepared, first_answer: asyncio.Event
    ) -> None:
        try:
            if plan.delay_s:
                await asyncio.sleep(plan.delay_s)
            txn.in_progress_until_notified = False  # the bank has confirmed: querydr tells the result
            for record, params in prepared.injections:
                await self._deliver(record, params(), None, None)
            if prepared.primary is None:
                return
            self._spawn(self._release_held_after(first_answer))
            await self._send_genuine(txn, plan, prepared.primary, prepared.copies, first_answer)
            if prepared.contradiction is not None:
                await self._deliver(prepared.contradiction, self._contradicting_failure(txn), None, None)
        finally:
            first_answer.set()  # never leave a redirect waiting

    async def _send_genuine(
        self,
        txn: Transaction,
        plan: DeliveryPlan,
        primary: NotificationRecord,
        copies: list[NotificationRecord],
        first_answer: asyncio.Event,
    ) -> None:
        # Copies carry byte-identical parameters (same stamp, same hash): a true duplicate.
        frozen = self._genuine(txn)
        fresh = functools.partial(self._genuine, txn)  # retries re-stamp
        if plan.concurrent:
            await asyncio.gather(
                self._deliver(primary, frozen, fresh, first_answer),
                *(self._deliver(copy, frozen, None, None) for copy in copies),
            )
            return
        await self._deliver(primary, frozen, fresh, first_answer)
        for copy in copies:
            await self._deliver(copy, frozen, None, None)

    async def _release_held_after(self, first_answer: asyncio.Event) -> None:
        """swap_with_next: the held notification goes out once this payment's has been answered."""
        await first_answer.wait()
        held, self._held = self._held, []
        for txn, record in held:
            record.status = Delivery.PENDING
            self._spawn(self._deliver_current(record, txn, None))

    def _unhold(self, txn_ref: str) -> NotificationRecord | None:
        for index, (_, record) in enumerate(self._held):
            if record.txn_ref == txn_ref:
                del self._held[index]
                record.status = Delivery.PENDING
                return record
        return None

    # -- delivery -----------------------------------------------------------------------------

    async def _deliver_current(
        self, record: NotificationRecord, txn: Transaction, first_answer: asyncio.Event | None
    ) -> None:
        """Deliver the transaction's current result, freshly stamped on every attempt."""
        fresh = functools.partial(self._genuine, txn)
        await self._deliver(record, fresh(), fresh, first_answer)

    async def _deliver(
        self,
        record: NotificationRecord,
        first_params: dict[str, str],
        retry_params: ParamsFactory | None,
        first_answer: asyncio.Event | None,
    ) -> None:
        pauses = [0.0, *self._settings.ipn_retry_delays_s] if retry_params else [0.0]
        try:
            for number, pause in enumerate(pauses, start=1):
                if pause:
                    await asyncio.sleep(pause)
                params = first_params if number == 1 or retry_params is None else retry_params()
                attempt = await self._attempt(params, number)
                record.params = params
                record.attempts.append(attempt)
                self._journal.write("notification_attempt", {"notification": record.id, **attempt.view()})
                if first_answer is not None:
                    first_answer.set()
                if attempt.acknowledged:
                    record.status = Delivery.ACKNOWLEDGED
                    break
            else:
                record.status = Delivery.UNACKNOWLEDGED
        finally:
            if first_answer is not None:
                first_answer.set()
            if record.status == Delivery.PENDING:
                record.status = Delivery.CANCELLED
            self._finished(record)

    async def _attempt(self, params: dict[str, str], number: int) -> Attempt:
        at, started = self._clock(), time.perf_counter()
        try:
            response = await self._send(params)
        except TransportError as exc:
            return self._account(Attempt(number, at, _ms(started), error=str(exc)[:200]))
        attempt = Attempt(number, at, _ms(started), http_status=response.status)
        try:
            answer = IpnAnswer.model_validate_json(response.body)
        except ValueError:  # pydantic's ValidationError included
            attempt.error = "answer is not {RspCode, Message} JSON"
            return self._account(attempt)
        attempt.rsp_code, attempt.message = answer.rsp_code, answer.message
        return self._account(attempt)

    async def _send(self, params: dict[str, str]) -> Answer:
        return await self._http.send(self._settings.ipn_method, self._settings.ipn_url, params)

    def _account(self, attempt: Attempt) -> Attempt:
        if attempt.acknowledged:
            result = "acknowledged"
        elif attempt.http_status is None:
            result = "transport_error"
        elif attempt.http_status != 200:
            result = "http_error"
        elif attempt.rsp_code is None:
            result = "bad_answer"
        else:
            result = "refused"
        self._metrics.ipn_attempts.labels(result).inc()
        self._metrics.ipn_attempt_seconds.observe(attempt.elapsed_ms / 1000)
        return attempt

    def _finished(self, record: NotificationRecord) -> None:
        self._metrics.notifications.labels(record.kind, record.status).inc()
        last = record.attempts[-1] if record.attempts else None
        log.info(
            "ipn finished",
            extra={
                "txn_ref": record.txn_ref,
                "notification": record.id,
                "kind": record.kind,
                "status": record.status,
                "attempts": len(record.attempts),
                "rsp_code": last.rsp_code if last else None,
            },
        )

    # -- parameters ---------------------------------------------------------------------------

    def _stamped(self, fields: dict[str, str], stamped_at: datetime) -> dict[str, str]:
        return with_signature({**fields, NOTIFY_TIME: format_vnp_time(stamped_at)}, self._settings.secret)

    def _genuine(self, txn: Transaction) -> dict[str, str]:
        return self._stamped(txn.result_fields(), self._clock())

    def _forged_signature(self, txn: Transaction) -> dict[str, str]:
        params = self._genuine(txn)
        params[SECURE_HASH] = sign(params, "not-" + self._settings.secret)  # plausible, wrong key
        return params

    def _stale(self, txn: Transaction, age_s: float) -> dict[str, str]:
        return self._stamped(txn.result_fields(), self._clock() - timedelta(seconds=age_s))

    def _wrong_amount(self, txn: Transaction) -> dict[str, str]:
        fields = txn.result_fields()
        fields["vnp_Amount"] = str((txn.amount_vnd + WRONG_AMOUNT_DELTA_VND) * 100)
        return self._stamped(fields, self._clock())

    def _contradicting_failure(self, txn: Transaction) -> dict[str, str]:
        fields = txn.result_fields()
        fields.pop("vnp_BankTranNo", None)
        fields["vnp_ResponseCode"] = ResponseCode.OTHER_ERROR
        fields["vnp_TransactionStatus"] = TransactionStatus.FAILED
        return self._stamped(fields, self._clock())

    # -- bookkeeping --------------------------------------------------------------------------

    def _record(self, txn: Transaction, kind: Kind, *, retries: bool) -> NotificationRecord:
        record = NotificationRecord(
            # Not hex: one random hex id in ~100 holds a run of 13+ digits, which log scanners
            # for card numbers rightly flag (the card-data test did, now and then).
            id=secrets.token_urlsafe(12),
            txn_ref=txn.txn_ref,
            kind=kind,
            created_at=self._clock(),
            max_attempts=1 + len(self._settings.ipn_retry_delays_s) if retries else 1,
        )
        self._store.notifications.append(record)
        return record

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ipn delivery crashed", exc_info=task.exception())


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
