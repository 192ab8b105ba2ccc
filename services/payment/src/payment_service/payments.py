"""Card payments: start (signed redirect to the provider), settle (signed notification),
show status. A payment settles exactly once: the first outcome to be inserted into
`payment_finals` wins, and it carries its events (outbox) in the same insert.

One exception, for money: when the provider confirms a payment as paid after we recorded
another outcome (we expired it, or a failure notification came first), the payment is
credited anyway. The success is a second claim, `<payment id>:paid-late` in the same
collection, with its events: again one unique insert (a versioned rewrite of the first
record could race its outbox bookkeeping, and FerretDB would let both writes through). A
customer the provider has charged is never left uncredited."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

import vnpay
from mobi_contracts import AnyEvent, Topic
from mobi_contracts.events.payment import (
    BillPaid,
    BillPaidData,
    PaymentFailed,
    PaymentFailedData,
    PaymentSucceeded,
    PaymentSucceededData,
    TopupRecorded,
    TopupRecordedData,
)
from mobi_contracts.topics import PAYMENT_EVENTS
from servicekit.api import jsonable
from servicekit.buckets import hour_of, minute_of
from servicekit.directory import AccountDirectory
from servicekit.errors import ApiError, not_found
from servicekit.idempotency import IdempotencyKeys, fingerprint
from servicekit.mongo import Store, insert_versioned
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending
from servicekit.tenancy import EPOCH, of_tenancy

from .domain.rules import AmountRules, ProviderResult, event_id, judge, payment_id_for
from .provider import Provider, result_of
from .settings import PaymentSettings
from .store import BILL_OPEN, BILL_SETTLEMENTS, FINALS, PAYMENTS

log = logging.getLogger(__name__)
PRODUCER = "payment-service"
PAYMENTS_TOTAL = Counter("payments_total", "Payments by kind and status", ["service", "kind", "status"])
NOTIFICATIONS_TOTAL = Counter("payment_notifications_total", "Provider notifications", ["service", "result"])
LATE_SUCCESSES = Counter(
    "payment_late_successes_total",
    "Payments the provider confirmed as paid after another outcome was recorded; credited anyway",
    ["service", "replaced"],
)

OVERPAYMENTS = Counter(
    "payment_bill_overpayments_total",
    "Successful payments of a bill another payment had already paid; credited to the main balance",
    ["service"],
)

Settlement = Literal["settled", "replaced", "duplicate"]
LATE_SUFFIX = ":paid-late"  # the final record of a success that replaces an earlier outcome
# What a final record shows of the payment it settles (status reads need no second document).
_PAYMENT_FIELDS = (
    "kind",
    "msisdn",
    "amount_vnd",
    "method",
    "target_msisdn",
    "bill_id",
    "created_at",
    "expires_at",
    "credited_as",  # "topup": a bill paid twice, this payment credited to the main balance
)

Method = Literal["card_international", "card_domestic"]


@dataclass(frozen=True)
class Started:
    status_code: int
    body: dict[str, Any]


class OpenPayments:
    """Pending payments in Redis too, put there at creation: a payment document never changes
    after it is created (the outcome is its final record), so the provider's notification can
    read it here instead of from the store (one store read less per payment, on the path the
    provider waits on). The store stays the truth: a miss or a Redis error reads the store."""

    FIELDS = ("_id", "msisdn", "kind", "amount_vnd", "method", "target_msisdn", "bill_id", "order_info",
              "correlation_id", "created_at", "expires_at")  # fmt: skip

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    async def put(self, payment: dict[str, Any]) -> None:
        doc = {k: payment.get(k) for k in self.FIELDS}
        try:
            await self.redis.set(f"payment:open:{payment['_id']}", orjson.dumps(doc), ex=self.ttl)
        except RedisError as exc:
            log.warning("could not cache an open payment", extra={"error": repr(exc)})

    async def get(self, payment_id: str) -> dict[str, Any] | None:
        try:
            raw = await self.redis.get(f"payment:open:{payment_id}")
        except RedisError:
            return None
        if not isinstance(raw, bytes):
            return None
        doc: dict[str, Any] = orjson.loads(raw)
        for key in ("created_at", "expires_at"):
            doc[key] = datetime.fromisoformat(doc[key])
        return doc


class PaymentService:
    def __init__(
        self,
        *,
        store: Store,
        relay: OutboxRelay,
        provider: Provider,
        keys: IdempotencyKeys,
        accounts: AccountDirectory,
        rules: AmountRules,
        ttl: timedelta,
        service: str,
        topic: Topic = PAYMENT_EVENTS,
        open_payments: OpenPayments | None = None,
    ) -> None:
        self.topic = topic
        self.open_payments = open_payments
        self._tasks: set[asyncio.Task[None]] = set()
        self.store = store
        self.relay = relay
        self.provider = provider
        self.keys = keys
        self.accounts = accounts
        self.rules = rules
        self.ttl = ttl
        self.service = service

    @classmethod
    def from_settings(
        cls,
        settings: PaymentSettings,
        *,
        store: Store,
        relay: OutboxRelay,
        service: str,
        redis: Redis | None = None,
    ) -> PaymentService:
        """The service as configured; the caller closes `accounts` when done."""
        open_ttl = settings.payment_ttl_minutes * 60 + settings.reconcile_give_up_seconds
        return cls(
            open_payments=OpenPayments(redis, open_ttl) if redis is not None else None,
            store=store,
            relay=relay,
            provider=Provider(settings),
            keys=IdempotencyKeys(store),
            accounts=AccountDirectory(
                settings.account_internal_url, settings.service_name, settings.own_internal_key
            ),
            rules=AmountRules(settings.topup_min_vnd, settings.topup_max_vnd, settings.topup_step_vnd),
            ttl=timedelta(minutes=settings.payment_ttl_minutes),
            service=service,
        )

    # -- starting a payment --------------------------------------------------------------------

    async def start_topup(
        self,
        *,
        payer: str,
        key: str,
        amount_vnd: int,
        method: Method,
        target: str | None,
        client_ip: str,
        correlation_id: str,
    ) -> Started:
        problem = self.rules.problem(amount_vnd)
        if problem:
            raise ApiError(422, "invalid_amount", problem)
        if target and target != payer:
            await self.require_subscriber(target)
        target = target or payer
        request = {"kind": "topup", "amount_vnd": amount_vnd, "method": method, "target_msisdn": target}
        return await self._start(payer, key, request, client_ip, correlation_id)

    async def start_bill_payment(
        self, *, payer: str, key: str, bill_id: str, method: Method, client_ip: str, correlation_id: str
    ) -> Started:
        bill = await self.accounts.bill(bill_id)
        if bill is None or bill.get("msisdn") != payer:
            raise not_found("bill")  # someone else's bill is as good as absent
        if bill.get("status") == "paid":
            raise ApiError(409, "bill_already_paid", "this bill is already paid")
        request = {
            "kind": "bill",
            "amount_vnd": int(bill["amount_vnd"]),
            "method": method,
            "bill_id": bill_id,
            "target_msisdn": payer,
        }
        return await self._start(payer, key, request, client_ip, correlation_id)

    async def require_subscriber(self, target: str) -> None:
        if not await self.accounts.is_subscriber(target):
            raise ApiError(422, "not_a_subscriber", f"{target} is not an active MobiFone subscription")

    async def _start(
        self, payer: str, key: str, request: dict[str, Any], client_ip: str, correlation_id: str
    ) -> Started:
        scope = f"payment-{request['kind']}"
        stored = await self.keys.begin(scope, payer, key, fingerprint(request))
        if stored is not None:
            return Started(stored.status, stored.body)
        try:
            payment = await self._create(payer, key, request, client_ip, correlation_id)
            body = self._public(payment) | {"payment_url": self._payment_url(payment)}
        except Exception:
            await self.keys.release(scope, payer, key)
            raise
        await self.keys.complete(scope, payer, key, 201, body)
        return Started(201, body)

    async def _create(
        self, payer: str, key: str, request: dict[str, Any], client_ip: str, correlation_id: str
    ) -> dict[str, Any]:
        payment_id = payment_id_for(payer, key)
        now = datetime.now(UTC).replace(microsecond=0)
        kind = request["kind"]
        info = (
            f"Nap tien {request['target_msisdn']} {request['amount_vnd']} VND"
            if kind == "topup"
            else f"Thanh toan hoa don {request['bill_id']}"
        )
        payment = {
            "_id": payment_id,
            "msisdn": payer,
            **request,
            "status": "pending",
            "order_info": info[:255],
            "client_ip": client_ip,
            "provider": self.provider.name,
            "correlation_id": correlation_id,
            "created_at": now,
            "created_minute": minute_of(now),
            "created_hour": hour_of(now),
            "expires_at": now + self.ttl,
        }
        if kind == "bill":
            await self._claim_bill(request["bill_id"], payment_id, now)
        try:
            await insert_versioned(self.store, PAYMENTS, payment)
        except Exception as exc:  # the same key created it before: return that one
            existing = await self.store[PAYMENTS].find_one({"_id": payment_id})
            if existing is None:
                raise
            log.info(
                "payment already created for this key", extra={"payment_id": payment_id, "why": repr(exc)}
            )
            return existing
        PAYMENTS_TOTAL.labels(self.service, kind, "pending").inc()
        if self.open_payments is not None:
            await self.open_payments.put(payment)
        return payment

    async def _claim_bill(self, bill_id: str, payment_id: str, now: datetime) -> None:
        """The bill is this payment's to pay, or a 409 says why not. Two Idempotency-Keys
        used to start two payments of one bill that could both settle."""
        holder = await self._bill_holder(BILL_OPEN, bill_id, payment_id, now)
        if holder == payment_id:
            return
        state = await self._state_of(holder, now) if holder else "over"
        if state == "succeeded":
            raise ApiError(409, "bill_already_paid", "this bill is already paid")
        if state == "open":
            raise ApiError(
                409,
                "bill_payment_in_progress",
                "a payment of this bill is still open; finish it or wait until it expires",
                payment_id=holder,
            )
        # Its payment failed or expired: take the bill over, unless someone else just did.
        taken = await self.store[BILL_OPEN].update_one(
            {"_id": bill_id, "payment_id": holder}, {"$set": {"payment_id": payment_id, "at": now}}
        )
        if taken.modified_count != 1:
            raise ApiError(409, "bill_payment_in_progress", "another payment of this bill just started")

    async def _state_of(self, payment_id: str, now: datetime) -> str:
        final = await self.final(payment_id)
        if final is not None:
            return "succeeded" if final["status"] == "succeeded" else "over"
        pending = await self.store[PAYMENTS].find_one({"_id": payment_id}, {"expires_at": 1})
        # Past its window the provider no longer takes it; a late success would still be
        # credited (as a second settlement, below), so the bill need not wait for it.
        if pending is None or pending["expires_at"].replace(tzinfo=UTC) <= now:
            return "over"
        return "open"

    async def _settles_bill(self, payment: dict[str, Any], now: datetime) -> bool:
        """True when this success pays the bill; False when another payment already did."""
        payment_id: str = payment["_id"]
        return await self._bill_holder(BILL_SETTLEMENTS, payment["bill_id"], payment_id, now) == payment_id

    async def _bill_holder(self, collection: str, bill_id: str, payment_id: str, now: datetime) -> str | None:
        """Claims the bill in `collection` for the payment; returns the payment holding it
        (this one when the claim, now or earlier, was its own; None if the claim is gone)."""
        if await self.store.claim(collection, bill_id, payment_id=payment_id, at=now):
            return payment_id
        held = await self.store[collection].find_one({"_id": bill_id})
        return str(held["payment_id"]) if held else None

    def _payment_url(self, payment: dict[str, Any]) -> str:
        return self.provider.payment_url(
            txn_ref=payment["_id"],
            amount_vnd=payment["amount_vnd"],
            order_info=payment["order_info"],
            kind=payment["kind"],
            method=payment["method"],
            client_ip=payment["client_ip"],
            created_at=payment["created_at"],
            expires_at=payment["expires_at"],
        )

    # -- the provider's notification ---------------------------------------------------------------

    async def on_notification(self, params: dict[str, str]) -> vnpay.IpnAnswer:
        now = datetime.now(UTC)
        try:
            notification = self.provider.read_notification(params, now)
        except vnpay.InvalidMessage as exc:
            NOTIFICATIONS_TOTAL.labels(self.service, type(exc).__name__.lower()).inc()
            log.warning(
                "provider notification refused", extra={"why": str(exc), "txn_ref": params.get("vnp_TxnRef")}
            )
            return vnpay.IpnAnswer.for_error(exc)
        payment = await self._open_payment(notification.txn_ref)
        if payment is None:
            NOTIFICATIONS_TOTAL.labels(self.service, "unknown_order").inc()
            return vnpay.IpnAnswer.order_not_found()
        verdict = judge(payment["amount_vnd"], result_of(notification))
        if verdict.action == "reject_amount":
            NOTIFICATIONS_TOTAL.labels(self.service, "wrong_amount").inc()
            log.warning("notification amount differs", extra={"payment_id": payment["_id"]})
            return vnpay.IpnAnswer.invalid_amount()
        if verdict.action == "wait":
            NOTIFICATIONS_TOTAL.labels(self.service, "not_final").inc()
            return vnpay.IpnAnswer.unknown_error("transaction not final yet")
        assert verdict.status is not None
        outcome = await self.settle(
            payment,
            verdict.status,
            result_of(notification),
            verdict.reason_code,
            now,
            evidence=notification.signed_fields,
        )
        NOTIFICATIONS_TOTAL.labels(self.service, outcome).inc()
        if outcome == "duplicate":
            return vnpay.IpnAnswer.already_confirmed()
        return vnpay.IpnAnswer.confirm_success()

    async def _open_payment(self, payment_id: str) -> dict[str, Any] | None:
        cached = await self.open_payments.get(payment_id) if self.open_payments else None
        return cached or await self.store[PAYMENTS].find_one({"_id": payment_id})

    # -- settling ---------------------------------------------------------------------------------------

    async def settle(
        self,
        payment: dict[str, Any],
        status: str,
        result: ProviderResult | None,
        reason_code: str,
        now: datetime,
        evidence: dict[str, str] | None = None,
    ) -> Settlement:
        """Record the payment's outcome and its events in one write.

        "settled": this outcome is the first; "replaced": the provider confirmed as paid a
        payment we had recorded otherwise; "duplicate": nothing changed.
        """
        if status == "succeeded" and payment["kind"] == "bill" and not await self._settles_bill(payment, now):
            payment = payment | {"credited_as": "topup"}
            OVERPAYMENTS.labels(self.service).inc()
            log.error(
                "a bill was paid twice: crediting the second payment", extra={"payment_id": payment["_id"]}
            )
        final, entries = self._final(payment, status, result, reason_code, now, evidence)
        body = {k: v for k, v in final.items() if k != "_id"}
        if await self.store.claim(FINALS, payment["_id"], **with_pending(body, entries, now), rev=1):
            PAYMENTS_TOTAL.labels(self.service, payment["kind"], status).inc()
            await self._relay_now(payment["_id"], entries, rev=1)
            return "settled"
        if status != "succeeded":
            return "duplicate"
        return await self._replace_with_success(payment["_id"], body, entries, now)

    async def _replace_with_success(
        self, payment_id: str, body: dict[str, Any], entries: list[dict[str, Any]], now: datetime
    ) -> Settlement:
        recorded = await self.store[FINALS].find_one({"_id": payment_id})
        if recorded is None or recorded["status"] == "succeeded":
            return "duplicate"
        late = body | {"payment_id": payment_id, "replaces": recorded["status"]}
        if not await self.store.claim(
            FINALS, payment_id + LATE_SUFFIX, **with_pending(late, entries, now), rev=1
        ):
            return "duplicate"  # another copy of this notification got there first
        LATE_SUCCESSES.labels(self.service, recorded["status"]).inc()
        PAYMENTS_TOTAL.labels(self.service, body["kind"], "succeeded").inc()
        log.error(
            "provider confirmed a payment recorded as %s: crediting it", recorded["status"],
            extra={"payment_id": payment_id, "replaced": recorded["status"]},
        )  # fmt: skip
        await self._relay_now(payment_id + LATE_SUFFIX, entries, rev=1)
        return "replaced"

    def _final(
        self,
        payment: dict[str, Any],
        status: str,
        result: ProviderResult | None,
        reason_code: str,
        now: datetime,
        evidence: dict[str, str] | None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        entries = outbox_entries(self.topic, self._events(payment, status, result, reason_code, now))
        final = {
            "_id": payment["_id"],
            **{k: payment.get(k) for k in _PAYMENT_FIELDS},
            "status": status,
            "reason_code": reason_code,
            "reason": vnpay.describe_response(reason_code) if reason_code else "",
            "provider_transaction_no": result.transaction_no if result else None,
            "bank_code": result.bank_code if result else None,
            "card_type": result.card_type if result else None,
            "topup_event_id": str(event_id(payment["_id"], "topup")) if status == "succeeded" else None,
            "settled_at": now,
            "settled_minute": minute_of(now),
            "settled_hour": hour_of(now),
            "events": entries,  # kept after relaying, for reconciliation
            # What the provider signed (never card data: the provider does not send it), for disputes.
            "evidence": evidence or {},
        }
        return final, entries

    async def _relay_now(self, payment_id: str, entries: list[dict[str, Any]], rev: int) -> None:
        await self.relay.publisher.publish_serialized(entries)
        # Marking the entries relayed need not delay the provider's answer: if this process
        # dies first the sweeper relays again (consumers dedupe by event id). Through the
        # store's bounded gate, so a burst's bookkeeping does not queue ahead of settlements.
        self._spawn(self.store.bounded(self.relay.clear({"_id": payment_id, "rev": rev})))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _events(
        self,
        payment: dict[str, Any],
        status: str,
        result: ProviderResult | None,
        reason_code: str,
        now: datetime,
    ) -> list[AnyEvent]:
        pid, payer = payment["_id"], payment["msisdn"]
        common: dict[str, Any] = {
            "producer": PRODUCER,
            "correlation_id": payment.get("correlation_id") or pid,
        }
        if status != "succeeded":
            return [
                PaymentFailed.new(
                    subject=payer,
                    event_id=event_id(pid, "failed"),
                    data=PaymentFailedData(
                        payment_id=pid,
                        kind=payment["kind"],
                        amount_vnd=payment["amount_vnd"],
                        status="expired" if status == "expired" else "failed",
                        reason_code=reason_code or status,
                        reason=vnpay.describe_response(reason_code) if reason_code else status,
                        failed_at=now,
                    ),
                    **common,
                )
            ]
        assert result is not None
        succeeded = PaymentSucceeded.new(
            subject=payer,
            event_id=event_id(pid, "succeeded"),
            data=PaymentSucceededData(
                payment_id=pid,
                kind=payment["kind"],
                amount_vnd=payment["amount_vnd"],
                method=payment["method"],
                provider=self.provider.name,
                provider_transaction_no=result.transaction_no,
                bank_code=result.bank_code,
                card_type=result.card_type,
                target_msisdn=payment["target_msisdn"],
                bill_id=payment.get("bill_id"),
                paid_at=now,
            ),
            **common,
        )
        if payment["kind"] == "bill" and payment.get("credited_as") != "topup":
            effect: AnyEvent = BillPaid.new(
                subject=payer,
                event_id=event_id(pid, "bill"),
                data=BillPaidData(
                    bill_id=payment["bill_id"],
                    amount_vnd=payment["amount_vnd"],
                    payment_id=pid,
                    payer_msisdn=payer,
                    paid_at=now,
                ),
                **common,
            )
        else:
            effect = TopupRecorded.new(
                subject=payment["target_msisdn"],
                event_id=event_id(pid, "topup"),
                data=TopupRecordedData(
                    topup_id=pid,
                    amount_vnd=payment["amount_vnd"],
                    method=payment["method"],
                    payer_msisdn=payer,
                    payment_id=pid,
                    provider_reference=result.transaction_no,
                    recorded_at=now,
                ),
                **common,
            )
        return [succeeded, effect]

    async def final(self, payment_id: str) -> dict[str, Any] | None:
        """The outcome that stands: a late success replaces what was recorded before it."""
        first = await self.store[FINALS].find_one({"_id": payment_id})
        if first is None or first["status"] == "succeeded":
            return first
        late = await self.store[FINALS].find_one({"_id": payment_id + LATE_SUFFIX})
        return (late | {"_id": payment_id}) if late else first

    # -- reading ---------------------------------------------------------------------------------------------

    async def current(self, payment_id: str) -> dict[str, Any] | None:
        """The settled outcome is the final record (one read); a pending payment is its document."""
        return await self.final(payment_id) or await self.store[PAYMENTS].find_one({"_id": payment_id})

    async def status_for(self, payer: str, payment_id: str, owner_since: datetime = EPOCH) -> dict[str, Any]:
        """A payment of the payer's tenancy (a recycled number's next owner sees none of the
        previous owner's)."""
        payment = await self.current(payment_id)
        # created_at is kept to the second (the provider's format): compare at that precision.
        tenancy = owner_since.replace(microsecond=0)
        if (
            payment is None
            or payment["msisdn"] != payer
            or not of_tenancy(payment.get("created_at"), tenancy)
        ):
            raise not_found("payment")
        return self._public(payment)

    @staticmethod
    def _public(payment: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "kind",
            "status",
            "amount_vnd",
            "method",
            "target_msisdn",
            "bill_id",
            "reason_code",
            "reason",
            "created_at",
            "expires_at",
            "settled_at",
        )
        out = {
            "payment_id": payment["_id"],
            **{k: payment.get(k) for k in keys if payment.get(k) is not None},
        }
        return jsonable(out)
