"""Payment service: wiring only. Entry point `payment-service`."""

from __future__ import annotations

from mobi_contracts.topics import PAYMENT_CREDITS_GROUP, PAYMENT_EVENTS
from servicekit.app import Service
from servicekit.outbox import OutboxRelay

from . import api
from .handlers import credits_handler
from .payments import PaymentService
from .reconcile import ReconcileSchedule, reconciler_for
from .scratch import ScratchCards
from .settings import PaymentSettings
from .store import FINALS, INDEXES, SCRATCH_USES


def create_service(settings: PaymentSettings | None = None) -> Service:
    settings = settings or PaymentSettings()
    service = Service(
        settings,
        title="My MobiFone payment service",
        description="Card top-ups and bill payments through the payment provider; scratch cards.",
        indexes=INDEXES,
    )
    name = settings.service_name
    finals = OutboxRelay(service.store, service.publisher, name, FINALS)
    uses = OutboxRelay(service.store, service.publisher, name, SCRATCH_USES)
    payments = PaymentService.from_settings(
        settings, store=service.store, relay=finals, service=name, redis=service.redis
    )
    cards = ScratchCards(
        store=service.store,
        redis=service.redis,
        relay=uses,
        pepper=settings.scratch_pin_pepper.get_secret_value().encode(),
        max_wrong=settings.scratch_max_wrong,
        lockout_seconds=settings.scratch_lockout_seconds,
        service=name,
    )
    service.provide("payments", payments)
    service.provide("scratch_cards", cards)
    service.relay_outbox(finals)
    service.relay_outbox(uses)
    reconciler = reconciler_for(settings, payments, service.publisher, [finals, uses])
    schedule = ReconcileSchedule(reconciler, service.redis, settings.reconcile_interval_seconds, name)
    service.background(schedule.run_forever)
    service.background(payments.keys.run_cleanup)
    service.on_shutdown(payments.accounts.close)
    service.consume(PAYMENT_CREDITS_GROUP, credits_handler(service.store))
    service.document_publishing(PAYMENT_EVENTS)
    for router in (api.me, api.provider, api.internal):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
