"""Notify service: wiring only. Entry point `notify-service`."""

from __future__ import annotations

from mobi_contracts.topics import NOTIFY_GROUP, PROMOTIONS
from servicekit.app import Service

from . import api
from .directory import Directory
from .fanout import FanOut
from .handlers import notify_handler
from .promotions import Inbox
from .push import Pusher
from .settings import NotifySettings
from .store import INDEXES
from .tenancy import TenancyEnds
from .transactional import Transactional


def create_service(settings: NotifySettings | None = None) -> Service:
    settings = settings or NotifySettings()
    service = Service(
        settings,
        title="My MobiFone notify service",
        description="Devices, notification preferences, the promotions inbox, campaign fan-out and "
        "transactional pushes (FCM HTTP v1, APNs).",
        indexes=INDEXES,
    )
    directory = Directory(service.store)
    pusher = Pusher(settings)
    fanout = FanOut(service.store, service.redis, directory, pusher, settings)
    transactional = Transactional(
        service.store,
        directory,
        pusher,
        settings.service_name,
        {
            "low_balance_vnd": settings.low_balance_vnd,
            "receipt_max_age_seconds": settings.receipt_max_age_seconds,
        },
    )
    service.provide("directory", directory)
    service.provide("inbox", Inbox(service.store, directory, settings.inbox_cache_seconds))
    service.provide("store", service.store)
    service.provide("publisher", service.publisher)
    service.provide("max_devices", settings.max_devices_per_subscriber)
    service.consume(
        NOTIFY_GROUP, notify_handler(service.store, transactional, TenancyEnds(service.store, directory))
    )
    service.document_publishing(PROMOTIONS)
    service.background(fanout.run_forever)
    service.on_shutdown(fanout.stop)
    service.on_shutdown(pusher.close)
    for router in (api.me, api.internal):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
