"""Errors an API returns on purpose: a status, a stable code and a message for people."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def unauthorized(message: str = "missing or invalid access token") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def unavailable(
    message: str = "temporarily unavailable, try again shortly", retry_after: int = 2
) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def too_many(code: str, message: str, retry_after: int) -> ApiError:
    """429 with the seconds to wait, in the header and in the body."""
    return ApiError(429, code, message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)
