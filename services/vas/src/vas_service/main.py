"""VAS service: wiring only. Entry point `vas-service`."""

from __future__ import annotations

from datetime import timedelta

from mobi_contracts.topics import VAS_EVENTS, VAS_GROUP
from servicekit.app import Service
from servicekit.idempotency import IdempotencyKeys
from servicekit.outbox import OutboxRelay
from servicekit.schedule import LeasedJob

from . import api
from .charging import ChargeDesk
from .directory import AccountDirectory
from .handlers import vas_handler
from .renewals import Renewals
from .settings import VasSettings
from .store import CONSENTS, INDEXES
from .subscriptions import VasService


def create_service(settings: VasSettings | None = None) -> Service:
    settings = settings or VasSettings()
    service = Service(
        settings,
        title="My MobiFone VAS service",
        description="Value-added services and data packs: catalogue, subscriptions with consent, "
        "guard, renewals, plan changes.",
        indexes=INDEXES,
    )
    name = settings.service_name
    relay = OutboxRelay(service.store, service.publisher, name, CONSENTS)
    desk = ChargeDesk(service.store, service.publisher, service.redis, VAS_EVENTS, name)
    directory = AccountDirectory(settings.account_internal_url, name, settings.own_internal_key)
    keys = IdempotencyKeys(service.store)
    vas = VasService(
        store=service.store,
        desk=desk,
        relay=relay,
        keys=keys,
        directory=directory,
        topic=VAS_EVENTS,
        confirm_window=timedelta(minutes=settings.confirm_window_minutes),
        refund_window=timedelta(hours=settings.refund_window_hours),
        notice_lead=timedelta(hours=settings.renewal_notice_hours),
    )
    renewals = Renewals(
        store=service.store,
        desk=desk,
        vas=vas,
        publisher=service.publisher,
        topic=VAS_EVENTS,
        service=name,
        chunk=settings.renewal_chunk,
        lookback=timedelta(minutes=settings.renewal_first_lookback_minutes),
    )
    job = LeasedJob(service.redis, "vas:renewals", every=settings.renewal_interval_seconds, lease_seconds=600)

    async def renewal_passes() -> None:
        await job.run_forever(renewals.run_once)

    service.provide("vas", vas)
    service.provide("renewals", renewals)
    service.provide("renewal_job", job)
    service.background(relay.run_sweeper)
    service.background(desk.run_sweeper)
    service.background(keys.run_cleanup)
    service.background(renewal_passes)
    service.on_shutdown(directory.close)
    service.consume(VAS_GROUP, vas_handler(desk, vas))
    service.document_publishing(VAS_EVENTS)
    for router in (api.public, api.me, api.providers, api.ops):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
