"""Application factory: one self-contained sandbox per call (tests run several side by side)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import control_api, hosted_page, provider_api
from .checkout import Checkout
from .ipn_client import IpnClient
from .journal import Journal
from .metrics import Metrics
from .notifier import Notifier
from .runtime import Sandbox
from .settings import Settings
from .store import Store
from .switches import SwitchBoard

log = logging.getLogger("payment_provider_sandbox")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = _utc_now) -> FastAPI:
    settings = settings or Settings()
    http = IpnClient(timeout_s=settings.ipn_timeout_s)
    sandbox = _wire(settings, http, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "sandbox ready",
            extra={
                "tmn_code": settings.tmn_code,
                "ipn_url": settings.ipn_url,
                "ipn_method": settings.ipn_method,
            },
        )
        yield
        await sandbox.notifier.aclose()
        await http.aclose()

    app = FastAPI(
        title="Payment provider sandbox", lifespan=lifespan, docs_url="/sandbox/docs", redoc_url=None
    )
    app.state.sandbox = sandbox
    for module in (hosted_page, provider_api, control_api):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.middleware("http")(_request_log(sandbox.metrics))
    return app


def _wire(settings: Settings, http: IpnClient, clock: Callable[[], datetime]) -> Sandbox:
    store, metrics, switches = Store(), Metrics(), SwitchBoard()
    journal = Journal(settings.record_path)
    notifier = Notifier(settings, store, journal, metrics, http, clock)
    checkout = Checkout(settings, store, switches, notifier, journal, metrics, clock)
    return Sandbox(settings, store, switches, notifier, checkout, metrics, clock)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes the offending input back; here that could be a card number.
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        for err in exc.errors()
    ]
    return JSONResponse({"error": "invalid_request", "detail": errors}, status_code=422)


def _request_log(
    metrics: Metrics,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.http_requests.labels(request.method, route, str(response.status_code)).inc()
        # Path only: query strings are not logged.
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response

    return middleware
