"""VAS service: wiring only. Entry point `vas-service`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis

from mobi_contracts import Topic
from mobi_contracts.topics import VAS_EVENTS, VAS_GROUP
from servicekit.app import Service
from servicekit.directory import AccountDirectory
from servicekit.idempotency import IdempotencyKeys
from servicekit.kafka.publisher import EventPublisher
from servicekit.limits import WindowLimiter
from servicekit.mongo import Store
from servicekit.outbox import OutboxRelay
from servicekit.schedule import LeasedJob

from . import api
from .answers import Answers
from .budget import Budget
from .catalog import Catalog
from .chains import Chains
from .charging import ChargeDesk
from .consent_log import ConsentLog
from .guard import Guards
from .handlers import vas_handler
from .inflight import Inflight, Resumer
from .lifecycle import Lifecycle
from .partners import Partners
from .plans import Plans
from .redemptions import Redemptions
from .renewals import Renewals
from .settings import VasSettings
from .stopping import Stopping
from .store import CONSENTS, INDEXES
from .use_cases import UseCases
from .views import Views


@dataclass
class Parts:
    """The VAS service's objects, wired (the service and the integration tests share this)."""

    relay: OutboxRelay
    chains: Chains
    desk: ChargeDesk
    use_cases: UseCases
    lifecycle: Lifecycle
    stopping: Stopping
    renewals: Renewals
    resumer: Resumer
    answers: Answers
    redemptions: Redemptions


def assemble(
    settings: VasSettings,
    store: Store,
    publisher: EventPublisher,
    redis: Redis,
    topic: Topic = VAS_EVENTS,
    directory: AccountDirectory | None = None,
    loyalty_url: str | None = None,
) -> Parts:
    """Without a directory (tests) no subscriber is looked up; without loyalty's address a
    catalogue import is not checked against its rewards."""
    name = settings.service_name
    relay = OutboxRelay(store, publisher, name, CONSENTS)
    log = ConsentLog(store, relay, topic)
    views = Views(store, log)
    limiter = WindowLimiter(redis)
    budget = Budget(store, views.month_spend)
    desk = ChargeDesk(store, publisher, redis, topic, name)
    chains = Chains(
        store=store,
        log=log,
        desk=desk,
        views=views,
        inflight=Inflight(store),
        budget=budget,
        guards=Guards(store, log, budget, limiter),
        topic=topic,
        confirm_window=timedelta(minutes=settings.confirm_window_minutes),
        refund_window=timedelta(hours=settings.refund_window_hours),
        notice_lead=timedelta(hours=settings.renewal_notice_hours),
    )
    catalog = Catalog(store, loyalty_url)
    lifecycle = Lifecycle(chains)
    stopping = Stopping(chains)
    renewals = Renewals(
        chains,
        service=name,
        chunk=settings.renewal_chunk,
        lookback=timedelta(minutes=settings.renewal_first_lookback_minutes),
    )
    resumer = Resumer(chains.inflight, name, after=timedelta(seconds=settings.resume_after_seconds))
    resumer.register("activate", lifecycle.complete_activation)
    resumer.register("skip", lifecycle.complete_skip)
    resumer.register("cancel", stopping.complete_cancel)
    resumer.register("renewal_off", stopping.complete_renewal_off)
    resumer.register("renewals", renewals.complete_batch)
    use_cases = UseCases(
        chains=chains,
        catalog=catalog,
        lifecycle=lifecycle,
        stopping=stopping,
        plans=Plans(log, catalog, directory),
        partners=Partners(settings, limiter),
        keys=IdempotencyKeys(store),
        limiter=limiter,
        app_requests_per_hour=settings.app_requests_per_hour,
    )
    return Parts(
        relay=relay,
        chains=chains,
        desk=desk,
        use_cases=use_cases,
        lifecycle=lifecycle,
        stopping=stopping,
        renewals=renewals,
        resumer=resumer,
        answers=Answers(desk, budget),
        redemptions=Redemptions(chains, catalog, lifecycle),
    )


def create_service(settings: VasSettings | None = None) -> Service:
    settings = settings or VasSettings()
    service = Service(
        settings,
        title="My MobiFone VAS service",
        description="Value-added services and data packs: catalogue, subscriptions with consent, "
        "guard, renewals, plan changes.",
        indexes=INDEXES,
    )
    directory = AccountDirectory(
        settings.account_internal_url, settings.service_name, settings.own_internal_key
    )
    parts = assemble(
        settings, service.store, service.publisher, service.redis, VAS_EVENTS, directory, settings.loyalty_url
    )
    job = LeasedJob(service.redis, "vas:renewals", every=settings.renewal_interval_seconds, lease_seconds=600)

    async def renewal_passes() -> None:
        await job.run_forever(parts.renewals.run_once)

    async def resume_passes() -> None:
        await parts.resumer.run_forever(settings.resume_every_seconds)

    service.provide("use_cases", parts.use_cases)
    service.provide("partners", parts.use_cases.partners)
    service.provide("renewals", parts.renewals)
    service.provide("renewal_job", job)
    service.relay_outbox(parts.relay)
    service.background(parts.use_cases.keys.run_cleanup)
    service.background(renewal_passes)
    service.background(resume_passes)
    service.on_shutdown(directory.close)
    service.consume(VAS_GROUP, vas_handler(parts.answers, parts.redemptions, parts.stopping))
    service.document_publishing(VAS_EVENTS)
    for router in (api.public, api.me, api.partners, api.ops):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
