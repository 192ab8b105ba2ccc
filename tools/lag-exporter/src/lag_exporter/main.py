"""The lag exporter: wiring only. Entry point `lag-exporter`.

Consumers export their own lag (servicekit's `consumer_lag`), so a dead or wedged consumer
stops reporting it exactly when it matters. This process reads the broker instead: every
`POLL_INTERVAL_SECONDS` it lists the consumer groups, fetches their committed offsets and the
partitions' end offsets, and serves the result on /metrics (lag_exporter.metrics). Same shape as
the services: settings from the environment (LagExporterSettings), JSON logs, /health (the
process answers), /ready (the broker was read within STALE_AFTER_SECONDS), /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from servicekit.logs import configure_logging

from .broker import BrokerReader
from .domain import CommitClock, Snapshot
from .metrics import SnapshotCollector, poll_counter
from .settings import LagExporterSettings

log = logging.getLogger(__name__)


class LagExporter:
    """Polls the broker and keeps the last snapshot. A failed poll starts the clients afresh
    (a broker restart can leave the admin client's coordinator cache stale)."""

    def __init__(self, settings: LagExporterSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.clock = CommitClock()
        self.latest: Snapshot | None = None
        self.last_error = ""
        self._polls = poll_counter(registry)
        self._reader: BrokerReader | None = None

    def fresh(self) -> bool:
        return self.latest is not None and time.time() - self.latest.at < self.settings.stale_after_seconds

    def _new_reader(self) -> BrokerReader:
        s = self.settings
        return BrokerReader(
            s.kafka_access,
            exclude_groups=s.exclude_groups,
            exclude_topics=s.exclude_topics,
            group_concurrency=s.group_concurrency,
            request_timeout_ms=s.request_timeout_ms,
        )

    async def poll_once(self) -> None:
        try:
            if self._reader is None:
                reader = self._new_reader()
                try:
                    await reader.start()
                except BaseException:
                    await reader.stop()
                    raise
                self._reader = reader
            reading = await asyncio.wait_for(self._reader.read(), self.settings.stale_after_seconds / 2)
        except Exception as exc:
            self._polls.labels("error").inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("reading the broker failed", extra={"error": self.last_error})
            await self.close()
            return
        self.latest = self.clock.snapshot(reading)
        self.last_error = ""
        self._polls.labels("ok").inc()

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.settings.poll_interval_seconds)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with suppress(Exception):
                await reader.stop()


def create_app(settings: LagExporterSettings | None = None) -> FastAPI:
    settings = settings or LagExporterSettings()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    exporter = LagExporter(settings, registry)
    registry.register(SnapshotCollector(lambda: exporter.latest, exporter.fresh))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        task = asyncio.create_task(exporter.run(), name="poll_broker")
        log.info("lag exporter started", extra={"port": settings.http_port})
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await exporter.close()

    app = FastAPI(title="Kafka consumer lag exporter", lifespan=lifespan)
    app.state.exporter = exporter

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        if exporter.fresh():
            assert exporter.latest is not None
            groups = len(exporter.latest.members)
            return JSONResponse({"status": "ready", "checks": {"kafka": "ok", "groups": str(groups)}})
        reason = exporter.last_error or "no reading of the broker yet"
        return JSONResponse({"status": "not_ready", "checks": {"kafka": f"error: {reason}"}}, 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run() -> None:
    settings = LagExporterSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
