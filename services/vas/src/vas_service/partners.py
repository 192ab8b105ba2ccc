"""Content providers and partner web pages: who is asking, and how often.

Each provider has its own credential (`X-Internal-Caller: content-provider:<id>` with its own
`X-Internal-Key`; production keys from CONTENT_PROVIDER_KEYS, a Secret): the provider is who
the credential says, never what the body says (a body naming another provider is refused), and
it may only request its own services (the catalogue names each item's provider). Operators
(`ops`) may act for a provider they name. Outside requests are limited per provider and per
number, and the "confirm this subscription?" pushes they cause are limited per number and per
provider, so no partner can flood a number or the platform.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from servicekit.errors import ApiError
from servicekit.limits import Budget, WindowLimiter

from .settings import VasSettings

CALLER_PREFIX = "content-provider:"
DAY = 24 * 3600


@dataclass(frozen=True)
class Asker:
    provider: str | None  # None: an operator, who names the provider
    is_ops: bool = False


def forbidden() -> ApiError:
    return ApiError(403, "forbidden", "internal endpoint: caller not allowed")


class Partners:
    def __init__(self, settings: VasSettings, limiter: WindowLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    def authenticate(self, request: Request) -> Asker:
        caller = request.headers.get("x-internal-caller", "")
        presented = request.headers.get("x-internal-key", "")
        if caller == "ops":
            expected = request.app.state.internal_caller_keys.get("ops", "")
            asker = Asker(provider=None, is_ops=True)
        elif caller.startswith(CALLER_PREFIX):
            asker = Asker(provider=caller.removeprefix(CALLER_PREFIX))
            expected = self.settings.provider_key(asker.provider or "")
        else:
            raise forbidden()
        if not (expected and presented and hmac.compare_digest(presented.encode(), expected.encode())):
            raise forbidden()
        return asker

    @staticmethod
    def provider_of(asker: Asker, named: str | None) -> str:
        if asker.is_ops:
            if not named:
                raise ApiError(422, "provider_required", "name the provider you act for")
            return named
        if named and named != asker.provider:
            raise ApiError(403, "not_this_provider", "a provider can only ask for itself")
        return str(asker.provider)

    async def admit_request(self, provider: str, msisdn: str) -> None:
        s = self.settings
        await self.limiter.require(
            [
                Budget(f"vas:outside:provider:{provider}", s.provider_requests_per_minute, 60),
                Budget(f"vas:outside:number:{msisdn}", s.number_outside_requests_per_day, DAY),
                Budget(
                    f"vas:outside:provider-number:{provider}:{msisdn}",
                    s.provider_number_requests_per_day,
                    DAY,
                ),
            ],
            code="too_many_requests",
            message="too many subscription requests for this provider or number; try later",
        )

    async def admit_confirmation(self, provider: str, msisdn: str) -> None:
        s = self.settings
        await self.limiter.require(
            [
                Budget(f"vas:confirm:number:{msisdn}", s.confirmations_per_number_per_day, DAY),
                Budget(f"vas:confirm:provider:{provider}", s.confirmations_per_provider_per_day, DAY),
            ],
            code="too_many_confirmations",
            message="this number was asked to confirm too many subscriptions today",
        )
