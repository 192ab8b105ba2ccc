"""HTTP plumbing shared by every service: request ids, metrics, access logs, JSON errors."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api import declare_errors
from .errors import ApiError
from .kafka.errors import kind_of
from .logs import correlation_id
from .metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger("servicekit.http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestContextMiddleware:
    """Pure ASGI (no per-request task switching): request id, timing, metrics, access log,
    and the last word on errors.

    No exception may leave the service's ASGI stack: Starlette answers an unhandled error
    with a 500 and then re-raises it, and uvicorn then closes the connection. The gateway
    keeps upstream connections alive and may already have handed that one to the next
    request, which then fails with a 502 (an innocent neighbour). So an error that reaches
    this middleware is answered here with the JSON 500 (or, once the response has started,
    only logged) and never re-raised: the connection stays usable."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = correlation_id.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        started_response = False

        async def send_tracked(message: Message) -> None:
            nonlocal started_response
            started_response = started_response or message["type"] == "http.response.start"
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("unhandled error")
            status = 500
            if not started_response:
                await _error(500, "internal_error", "something went wrong; quote the request id to support")(
                    scope, receive, send_with_id
                )
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            correlation_id.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
        HTTP_LATENCY.labels(self.service, method, template).observe(seconds)
        if template not in ("/health", "/ready", "/metrics"):
            log.info(
                "request",
                extra={"method": method, "route": template, "status": status, "ms": round(seconds * 1000, 1)},
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(candidate):
                return str(candidate)
    return uuid.uuid4().hex


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"error": code, "message": message, "request_id": correlation_id.get(), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(errors: list[Any]) -> tuple[str, list[dict[str, str]]]:
    details = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            details.append({"field": "body", "problem": "request body is not valid JSON"})
            continue
        msg = str(err.get("msg", "invalid"))
        details.append({"field": loc, "problem": msg.removeprefix("Value error, ")})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return summary or "invalid request", details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        summary, details = _describe(list(exc.errors()))
        return _error(422, "invalid_request", summary, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(PyMongoError)
    @app.exception_handler(RedisError)
    async def dependency_down(_: Request, exc: Exception) -> JSONResponse:
        if kind_of(exc) != "transient":  # the store refused this request's data: a bug
            log.exception("store refused a request", exc_info=exc)
            return _error(500, "internal_error", "something went wrong; quote the request id to support")
        log.error("dependency unavailable", extra={"error": repr(exc)})
        return _error(503, "unavailable", "temporarily unavailable, try again shortly", {"Retry-After": "2"})

    # Anything else is answered by RequestContextMiddleware (see there for why not here).


def gateway_verified(request: Request, gateway_key: str) -> bool:
    """True when the request carries the gateway's key (so its X-Real-IP etc. can be trusted)."""
    presented = request.headers.get("x-gateway-key")
    return presented is not None and hmac.compare_digest(presented.encode(), gateway_key.encode())


def client_address(request: Request, gateway_key: str) -> str:
    """The client's address: the gateway's X-Real-IP on requests that came through it."""
    if gateway_verified(request, gateway_key):
        return request.headers.get("x-real-ip", "unknown")
    return request.client.host if request.client else "unknown"


def client_key(request: Request, gateway_key: str) -> str:
    """Who "the client" is for per-client limits.

    Over mobile data every subscriber reaches us from the carrier proxy's few addresses, so
    an address there is a whole city of phones; the carrier tells us the subscriber instead
    (header enrichment), and that is the client. Elsewhere the address is.
    """
    if gateway_verified(request, gateway_key) and request.headers.get("x-network") == "carrier":
        enriched = request.headers.get("x-msisdn")
        if enriched:
            return f"msisdn:{enriched}"
    return f"ip:{address_block(client_address(request, gateway_key))}"


def address_block(address: str) -> str:
    """The unit a client is limited by: an IPv4 address, or an IPv6 /64 (one home or phone
    gets a whole /64 and can pick any address in it, so per-/128 limits mean nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def site_of(client: str) -> str | None:
    """The IPv6 /48 (one site's allocation: 65,536 /64s) a client keyed by its /64 is in, for
    budgets a crowd of /64s must share; None for any other client."""
    if not client.startswith("ip:"):
        return None
    try:
        network = ipaddress.ip_network(client.removeprefix("ip:"), strict=False)
    except ValueError:
        return None
    return str(network.supernet(new_prefix=48)) if network.version == 6 else None


def internal_callers(*allowed: str) -> Callable[[Request], str]:
    """Dependency for an /internal route: only the named callers, each with its own key.

    `Depends(internal_callers("payment-service", "ops"))`; returns the caller's name."""
    if not allowed:
        raise ValueError("name the callers an internal route accepts")

    @declare_errors(403)
    def check(request: Request) -> str:
        caller = request.headers.get("x-internal-caller", "")
        presented = request.headers.get("x-internal-key", "")
        keys: dict[str, str] = request.app.state.internal_caller_keys
        expected = keys.get(caller, "")
        if not (caller in allowed and expected and presented):
            raise ApiError(403, "forbidden", "internal endpoint: caller not allowed")
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise ApiError(403, "forbidden", "internal endpoint: caller not allowed")
        return caller

    return check
