"""Building blocks of every service's HTTP API: the request body base, the Idempotency-Key
header, answers made JSON-ready, and the error answers documented once (`document_errors`,
which `Service.include_router` applies to every router)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

F = TypeVar("F", bound=Callable[..., Any])


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo is a 422, never silently ignored)
    and text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="8-64 of A-Z a-z 0-9 _ - : . ; send the same key to retry the same request",
    ),
]
"""The `Idempotency-Key` header of a POST that creates something (checked by
`servicekit.idempotency.require_key`)."""


def jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as JSON values (datetimes as ISO 8601 text, at any depth): for answers
    built by hand and for responses kept to answer a retry with."""
    encoded: dict[str, Any] = jsonable_encoder(doc)
    return encoded


# -- error answers, documented once -----------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="where, e.g. body.amount_vnd or query.limit")
    problem: str


class ErrorBody(BaseModel):
    """Every error answer of every service (and of the gateway): a stable code for programs,
    a sentence for people, the request id to quote to support, and sometimes more."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="stable code, e.g. invalid_request, not_found, locked_out")
    message: str
    request_id: str | None = Field(description="quote it to support")
    details: list[FieldProblem] | None = Field(default=None, description="422: what is wrong, field by field")
    retry_after: int | None = Field(
        default=None, description="429 from a service: seconds to wait (also in the Retry-After header)"
    )


MEANINGS = {
    400: "malformed request (a missing Idempotency-Key, a path the gateway refuses, ...)",
    401: "no valid access token, or the login failed",
    403: "not allowed for this caller",
    404: "not found (or not the caller's)",
    409: "conflicts with the current state",
    413: "request body too large (the gateway's limit, or the route's own)",
    422: "the request is invalid: `details` says what is wrong",
    429: "too many requests (the gateway's per-client rate, or this route's own limit): see Retry-After",
    503: "a dependency is unavailable right now: retry after Retry-After",
}
# Every route: the gateway refuses malformed requests (400) and rate-limits every client (429);
# any route reads the store or Redis, whose outage is a 503 (servicekit.http).
EVERY_ROUTE = (400, 429, 503)
_DECLARED = "__error_statuses__"


def errors(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: the error answers it gives beyond the ones every route has,
    each with the error model (`meanings`: a description per status, as `s409="..."`)."""
    return {
        status: {"model": ErrorBody, "description": meanings.get(f"s{status}", MEANINGS.get(status, "error"))}
        for status in statuses
    }


def declare_errors(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency with the error statuses it answers (e.g. 401 for the caller check): every
    route that depends on it documents them."""

    def mark(dependency: F) -> F:
        setattr(dependency, _DECLARED, statuses)
        return dependency

    return mark


def document_errors(router: APIRouter) -> None:
    """Add to each route of `router` the error answers it gives and does not document yet:
    those of every route, those of its dependencies, and 422 when it takes any input (FastAPI's
    own 422 schema is not what the services answer)."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        statuses = set(EVERY_ROUTE) | _dependency_statuses(route.dependant)
        if _takes_input(route.dependant):
            statuses.add(422)
        if _takes_body(route.dependant):
            statuses.add(413)  # the gateway's body limit (GATEWAY_BODY_LIMIT)
        answers = route.response_class
        json_route = not isinstance(answers, type) or issubclass(answers, JSONResponse)
        for status in sorted(statuses):
            if status not in route.responses and str(status) not in route.responses:
                route.responses[status] = _documented(status, json_route)


def _documented(status: int, json_route: bool) -> dict[str, Any]:
    if json_route:
        return {"model": ErrorBody, "description": MEANINGS[status]}
    # A route answering HTML or text: its errors are still JSON.
    schema = ErrorBody.model_json_schema()
    return {"description": MEANINGS[status], "content": {"application/json": {"schema": schema}}}


def _takes_input(dependant: Dependant) -> bool:
    """Reads a path, query, header or cookie parameter, or a body (itself or a dependency)."""
    d = dependant
    if d.path_params or d.query_params or d.header_params or d.cookie_params or d.body_params:
        return True
    return any(_takes_input(sub) for sub in d.dependencies)


def _takes_body(dependant: Dependant) -> bool:
    return bool(dependant.body_params) or any(_takes_body(sub) for sub in dependant.dependencies)


def _dependency_statuses(dependant: Dependant) -> set[int]:
    found: set[int] = set()
    for dependency in dependant.dependencies:
        found.update(getattr(dependency.call, _DECLARED, ()))
        found |= _dependency_statuses(dependency)
    return found
