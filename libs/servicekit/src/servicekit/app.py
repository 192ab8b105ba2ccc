"""One shape for every service: `Service(settings, ...)` wires HTTP, Kafka, the store and Redis.

    service = Service(settings, title="Account", indexes=store.INDEXES)
    service.consume(ACCOUNT_LEDGER_GROUP, handlers.on_ledger_events)
    service.include_router(api.router)
    app = service.app            # for uvicorn / tests
    service.run()                # the entry point

Start order: logs, store (indexes), Redis, event publisher, broker (subscribers start
consuming last, when everything they write to is up), background tasks. Stop (SIGTERM, see
servicekit.shutdown): not ready at once, consumers finish and commit their batches and leave
their groups, in-flight requests finish, background tasks stop, outboxes are flushed, then
the rest in reverse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import IndexModel

from mobi_contracts import ConsumerGroup, Topic, channel_title

from .api import document_errors
from .auth import TokenVerifier
from .http import RequestContextMiddleware, install_error_handlers
from .kafka.consumer import BatchHandler, EventConsumer, RetryPolicy
from .kafka.inbox import Inbox
from .kafka.publisher import EventPublisher, producer_broker, restart_this_process
from .logs import configure_logging
from .metrics import DEPENDENCY_READY, REGISTRY, SERVICE_READY, STORE_WEDGED
from .mongo import Store
from .outbox import OutboxRelay
from .redis_client import create_redis
from .settings import KitSettings
from .shutdown import GracefulServer, within

log = logging.getLogger(__name__)

BackgroundTask = Callable[[], Coroutine[Any, Any, None]]
GC_THRESHOLDS = (50_000, 20, 100)  # Python's default (700, 10, 10) is tuned for scripts


def tune_gc() -> None:
    """What start-up made lives as long as the process: out of the collector's way. A full
    collection walked it all and stopped the event loop for 60-140 ms every few seconds
    under load (the p99 of a cached balances read); young collections run less often too
    (with Python's defaults a consumer spent a quarter of its time collecting)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _freeze_once_warm(after_seconds: float = 60.0) -> None:
    """The first requests and batches build lazily what lives on (validators, pools,
    buffers): freeze that too once the service has warmed up."""
    await asyncio.sleep(after_seconds)
    gc.collect()
    gc.freeze()


class Service:
    def __init__(
        self,
        settings: KitSettings,
        *,
        title: str,
        description: str = "",
        version: str = "1.0.0",
        indexes: Mapping[str, Sequence[IndexModel]] | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.indexes = indexes or {}
        self.store = Store(
            settings.mongodb_url,
            settings.database_name,
            write_concurrency=settings.store_write_concurrency,
            app_name=self.name,
        )
        self.redis = create_redis(settings.redis_url)
        # One Kafka producer per service: the broker's (see servicekit.kafka.publisher).
        self.kafka_access = settings.kafka_access
        self.broker = producer_broker(
            self.kafka_access,
            self.name,
            logger=logging.getLogger(f"{self.name}.broker"),
            log_level=logging.DEBUG,  # per-message "Received/Processed" lines only at debug
            # At shutdown a subscriber waits this long for the batch in hand (then cancels it:
            # uncommitted, so it is redelivered and deduplicated).
            graceful_timeout=settings.shutdown_batch_seconds,
        )
        self.publisher = EventPublisher(self.broker, self.name)
        self.publisher.on_broken_producer = restart_this_process
        # Never started: it only describes what the service consumes and produces, with the
        # event schemas, for its AsyncAPI document.
        self.docs_broker = KafkaBroker(settings.kafka_bootstrap)
        self.consumers: list[EventConsumer] = []
        self._background: list[BackgroundTask] = []
        self._startup: list[BackgroundTask] = []
        self._shutdown: list[BackgroundTask] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._outboxes: list[OutboxRelay] = []
        self._drain: asyncio.Task[None] | None = None
        self._drain_began = 0.0
        self.asyncapi = AsyncAPI(self.docs_broker, title=f"{title} events", version=version)
        self.app = FastAPI(title=title, description=description, version=version, lifespan=self._lifespan)
        self.app.add_middleware(RequestContextMiddleware, service=self.name)
        install_error_handlers(self.app)
        self._add_operational_routes()
        self.token_verifier: TokenVerifier | None = None
        if settings.jwt_public_key_file:
            self.token_verifier = TokenVerifier(
                settings.jwt_public_key_file.read_bytes(),
                settings.jwt_issuer,
                settings.jwt_audience,
                self.redis,
            )
        self.app.state.token_verifier = self.token_verifier
        self.app.state.internal_caller_keys = settings.accepted_internal_keys
        self.app.state.gateway_key = settings.own_gateway_key

    # -- wiring, called from a service's main.py -------------------------------------------

    def include_router(self, router: APIRouter) -> None:
        """Serve the router's routes, each documenting the error answers it can give."""
        document_errors(router)
        self.app.include_router(router)

    def provide(self, name: str, value: Any) -> None:
        """Make a service-layer object available to routes as `request.app.state.<name>`."""
        setattr(self.app.state, name, value)

    def consume(self, group: ConsumerGroup, handler: BatchHandler, retry: RetryPolicy | None = None) -> None:
        """Consume `group` with `consumer_instances` members in this process: Kafka gives each
        its share of the partitions, so batches of different partitions are handled at the
        same time (one member handled them one after another: a slow batch on one partition
        delayed every other). A partition still has one member, so its events stay in order."""
        for instance in range(self.settings.consumer_instances):
            consumer = EventConsumer(
                group,
                handler,
                service=self.name,
                inbox=Inbox(self.redis, group.name, self.settings.inbox_ttl_seconds),
                publisher=self.publisher,
                retry=retry,
                probe=self.dependencies_answer,
                member=instance,
            )
            if instance == 0:
                consumer.document(self.docs_broker)
            consumer.subscribe(
                self.broker,
                max_records=self.settings.consumer_max_records,
                batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
                fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            )
            self.consumers.append(consumer)

    def document_publishing(self, topic: Topic) -> None:
        """List a topic this service produces in its AsyncAPI document (one entry per event)."""
        for event in topic.events:
            self.docs_broker.publisher(
                topic.name,
                schema=event,
                title=channel_title(topic, event),
                description=f"{event.EVENT_TYPE} v{event.EVENT_VERSION}, key: {topic.key}",
            )

    def on_startup(self, task: BackgroundTask) -> None:
        """Run once after the store, Redis and Kafka are up (e.g. seeding, warm-up)."""
        self._startup.append(task)

    def on_shutdown(self, task: BackgroundTask) -> None:
        self._shutdown.append(task)

    def background(self, task: BackgroundTask) -> None:
        """A long-running coroutine, cancelled at shutdown."""
        self._background.append(task)

    def relay_outbox(self, relay: OutboxRelay) -> None:
        """Sweep the relay's collection in the background (what a crash left behind) and
        flush it at shutdown, after the last request and batch (nothing waits for a sweep)."""
        self._background.append(relay.run_sweeper)
        self._outboxes.append(relay)

    @property
    def draining(self) -> bool:
        return self._drain is not None

    def drain(self) -> asyncio.Task[None]:
        """Begin shutting down (servicekit.shutdown): not ready from now on, and every consumer
        finishes its batch, commits it and leaves its group. Idempotent; the task ends when
        the consumers have stopped."""
        if self._drain is None:
            self._drain_began = time.monotonic()
            SERVICE_READY.labels(self.name).set(0)
            log.info("draining: not ready, consumers stopping")
            self._drain = asyncio.create_task(self._stop_consumers(), name="drain")
        return self._drain

    async def _stop_consumers(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        log.info("consumers stopped", extra={"after_s": round(time.monotonic() - self._drain_began, 2)})

    # -- lifecycle ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        configure_logging(self.name, self.settings.log_level)
        await self.store.connect()
        await self.store.ensure_indexes(self.indexes)
        await self.redis.ping()
        await self.publisher.start()
        for task in self._startup:
            await task()
        await self.broker.start()
        self._tasks = [asyncio.create_task(task(), name=task.__name__) for task in self._background]
        self._tasks.append(asyncio.create_task(self._watch_readiness(), name="watch_readiness"))
        tune_gc()
        self._tasks.append(asyncio.create_task(_freeze_once_warm(), name="freeze_once_warm"))
        SERVICE_READY.labels(self.name).set(1)
        log.info("service started", extra={"port": self.settings.http_port})
        try:
            yield
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """After the last request: the drain's end, then the rest in reverse start order."""
        await within(self.settings.shutdown_batch_seconds, self.drain(), "consumers")
        for running in self._tasks:
            running.cancel()
        for running in self._tasks:
            with suppress(asyncio.CancelledError):
                await running
        deadline = time.monotonic() + self.settings.shutdown_flush_seconds
        for relay in self._outboxes:
            await within(deadline - time.monotonic(), relay.flush(), f"outbox {relay.collection}")
        await self.broker.stop()
        for task in reversed(self._shutdown):
            await within(deadline - time.monotonic(), task(), task.__qualname__)
        await self.publisher.stop()
        await self.redis.aclose()
        await self.store.close()
        log.info("service stopped", extra={"after_s": round(time.monotonic() - self._drain_began, 2)})

    def run(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_keep_alive=self.settings.http_keepalive_seconds,
            timeout_graceful_shutdown=int(self.settings.shutdown_http_seconds),
        )
        GracefulServer(config, on_signal=self.drain, delay=self.settings.shutdown_delay_seconds).run()

    # -- health, readiness, metrics, docs -------------------------------------------------------

    async def _dependency_checks(self, timeout: float) -> dict[str, str]:  # noqa: ASYNC109
        probes: dict[str, Callable[[], Awaitable[Any]]] = {
            "store": self.store.ping,
            "redis": self.redis.ping,
            "kafka": self.publisher.ping,
        }

        async def check(probe: Callable[[], Awaitable[Any]]) -> str:
            try:
                await asyncio.wait_for(probe(), timeout=timeout)
                return "ok"
            except Exception as exc:
                return f"error: {type(exc).__name__}"

        results = await asyncio.gather(*(check(p) for p in probes.values()))
        return dict(zip(probes, results, strict=True))

    async def check_ready(self, timeout: float = 3) -> dict[str, str]:  # noqa: ASYNC109
        """The dependencies, and one line per consumer group: the first member waiting out an
        outage, else ok. Also what `service_ready`, `dependency_ready` and `store_wedged` say."""
        checks = await self._dependency_checks(timeout)
        for dependency in ("store", "redis", "kafka"):
            DEPENDENCY_READY.labels(self.name, dependency).set(checks[dependency] == "ok")
        wedged = checks["store"] == "error: TimeoutError" and self.store.answers_heartbeat
        STORE_WEDGED.labels(self.name).set(wedged)
        for consumer in self.consumers:
            line = f"consumer {consumer.group.name}"
            if not consumer.healthy:
                checks.setdefault(line, f"waiting out an outage: {consumer.last_error}")
        for consumer in self.consumers:
            checks.setdefault(f"consumer {consumer.group.name}", "ok")
        if not self.draining:
            SERVICE_READY.labels(self.name).set(all(v == "ok" for v in checks.values()))
        return checks

    async def _watch_readiness(self) -> None:
        """Keeps the readiness metrics current when nothing polls GET /ready (locally)."""
        while True:
            await asyncio.sleep(self.settings.readiness_watch_seconds)
            try:
                await self.check_ready()
            except Exception:
                log.exception("readiness check failed")

    async def dependencies_answer(self) -> bool:
        """For consumers: do the store, Redis and Kafka answer right now?"""
        return all(v == "ok" for v in (await self._dependency_checks(timeout=2)).values())

    def _add_operational_routes(self) -> None:
        app = self.app

        @app.get("/health", include_in_schema=False)
        async def health() -> dict[str, str]:
            return {"status": "ok", "service": self.name}

        @app.get("/ready", include_in_schema=False)
        async def ready() -> JSONResponse:
            if self.draining:  # shutting down: out of rotation, whatever the dependencies say
                return JSONResponse({"status": "draining", "checks": {"shutdown": "draining"}}, 503)
            checks = await self.check_ready()
            ok = all(v == "ok" for v in checks.values())
            return JSONResponse(
                {"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503
            )

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        @app.get("/asyncapi.json", include_in_schema=False)
        async def asyncapi_json() -> JSONResponse:
            return JSONResponse(self.asyncapi.to_specification().to_jsonable())

        @app.get("/asyncapi", include_in_schema=False)
        async def asyncapi_html() -> HTMLResponse:
            return HTMLResponse(get_asyncapi_html(self.asyncapi.to_specification(), try_it_out_path=None))
