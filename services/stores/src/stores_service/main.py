"""Stores and support service: wiring only. Entry point `stores-service`.

It consumes the subscriber lifecycle (a number that changes hands hides the previous
owner's tickets: STORES_GROUP); it publishes FeedbackReceived / FeedbackAnswered (v2: no
text on the bus) on stores.events.v1 from the feedback and answer outboxes.
"""

from __future__ import annotations

from mobi_contracts.topics import STORES_EVENTS, STORES_GROUP
from servicekit.app import Service
from servicekit.outbox import OutboxRelay

from . import api
from .catalogue import Catalogue
from .feedback import FeedbackDesk
from .handlers import stores_handler
from .hotlines import load_hotlines
from .settings import StoresSettings
from .store import FEEDBACK, INDEXES
from .tenancy import TenancyEnds


def create_service(settings: StoresSettings | None = None) -> Service:
    settings = settings or StoresSettings()
    service = Service(
        settings,
        title="My MobiFone stores and support service",
        description="Nearest stores, store search, hotlines and subscriber feedback.",
        indexes=INDEXES,
    )
    name = settings.service_name
    catalogue = Catalogue(
        service.store,
        service.redis,
        service=name,
        snapshot_ttl_seconds=settings.catalogue_snapshot_ttl_seconds,
        pointer_check_seconds=settings.catalogue_pointer_check_seconds,
        recheck_seconds=settings.catalogue_recheck_seconds,
    )
    relay = OutboxRelay(service.store, service.publisher, name, FEEDBACK)
    desk = FeedbackDesk(
        store=service.store,
        redis=service.redis,
        relay=relay,
        topic=STORES_EVENTS,
        service=name,
        per_hour=settings.feedback_per_hour,
        per_day=settings.feedback_per_day,
    )
    service.provide("settings", settings)
    service.provide("catalogue", catalogue)
    service.provide("feedback", desk)
    service.provide("hotlines", load_hotlines(settings.hotlines_file))
    service.background(catalogue.run_pointer_sync)
    service.relay_outbox(relay)
    service.background(desk.run_answer_completer)
    service.consume(STORES_GROUP, stores_handler(TenancyEnds(service.store)))
    service.document_publishing(STORES_EVENTS)
    for router in (api.stores, api.support, api.me, api.internal):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
