"""Every service's HTTP contract: its OpenAPI document and /docs load, and a property-based
fuzzer (schemathesis) drives every operation the gateway routes, THROUGH the gateway, as a
logged-in subscriber: no answer is a 5xx, and every answer is one the document promises
(status documented, content type and body matching its schema).

The fuzzer calls from 127.0.0.3, the address the gateway does not rate-limit (the load
benchmark's, RATE_LIMIT_EXEMPT_CIDRS), so the gateway's per-client rate does not starve it;
the services' own limits (login tries, feedback per hour, ...) still answer their 429s, which
the documents promise. Cases per operation: API_FUZZ_EXAMPLES (default 12), so the whole fuzz
stays within a few minutes on a 2-core machine."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from servicekit.internal_keys import caller_headers

from .conftest import CARRIER_PROXY, GATEWAY

pytestmark = pytest.mark.e2e

PORTS = {"account": 8101, "vas": 8102, "payment": 8103, "loyalty": 8104, "notify": 8105, "stores": 8106}
ROUTES = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "routes.tsv"
UNLIMITED = "127.0.0.3"  # RATE_LIMIT_EXEMPT_CIDRS of the local gateway
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Operations left out of the fuzz, and why.
NOT_FUZZED = {
    # Ends the fuzzer's session: every case after it would only see 401s.
    ("POST", "/api/v1/auth/logout"),
}


def service_url(service: str) -> str:
    return os.environ.get(f"{service.upper()}_URL", f"http://127.0.0.1:{PORTS[service]}")


def gateway_table() -> list[tuple[str, str, str]]:
    rows = []
    for line in ROUTES.read_text().splitlines():
        fields = line.split()
        if fields and not line.startswith("#"):
            rows.append((fields[0], fields[1], fields[2]))
    return rows


def routed_to(path: str, table: list[tuple[str, str, str]]) -> str | None:
    """The service nginx sends `path` to: an exact location, else the longest ^~ prefix, else
    the first regex (deploy/gateway/routes.tsv)."""
    for match, location, service in table:
        if match == "exact" and path == location:
            return service
    prefixes = [(loc, svc) for m, loc, svc in table if m == "prefix" and path.startswith(loc)]
    if prefixes:
        return max(prefixes, key=lambda p: len(p[0]))[1]
    for match, location, service in table:
        if match == "regex" and re.match(location, path):
            return service
    return None


def routed_document(service: str) -> dict[str, Any]:
    """The service's OpenAPI document, cut to the operations the gateway routes to it."""
    document: dict[str, Any] = httpx.get(f"{service_url(service)}/openapi.json", timeout=30).json()
    table = gateway_table()
    paths = {}
    for path, operations in document["paths"].items():
        sample = re.sub(r"\{[^}]+\}", "x1", path)  # a path parameter stands for one segment
        if routed_to(sample, table) != service:
            continue
        kept = {m: op for m, op in operations.items() if (m.upper(), path) not in NOT_FUZZED}
        if kept:
            paths[path] = kept
    return {**document, "paths": paths}


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """Connections from the address the gateway does not rate-limit."""
    with requests.Session() as s:
        s.mount("http://", _FromAddress(UNLIMITED))
        s.trust_env = False
        yield s


@pytest.fixture(scope="module")
def subscriber_headers() -> dict[str, str]:
    """A fresh prepaid subscriber, logged in over mobile data (header login through the
    carrier proxy); the fuzzer then calls as that subscriber from elsewhere with its token."""
    msisdn = "8476" + f"{int.from_bytes(os.urandom(4), 'big') % 10**7:07d}"
    headers = caller_headers("ops", os.environ.get("OPS_INTERNAL_KEY") or None)
    r = httpx.put(
        f"{service_url('account')}/internal/v1/subscribers/{msisdn}",
        json={"name": "Khách Kiểm Thử API", "plan": "prepaid", "status": "active"},
        headers=headers,
    )
    r.raise_for_status()
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CARRIER_PROXY), trust_env=False) as carrier:
        login = carrier.post(f"{GATEWAY}/api/v1/auth/header-login", headers={"X-MSISDN": msisdn})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.mark.parametrize("service", sorted(PORTS))
def test_every_service_serves_its_openapi_document_and_its_docs_page(service: str) -> None:
    document = httpx.get(f"{service_url(service)}/openapi.json", timeout=30)
    assert document.status_code == 200, document.text[:500]
    assert document.json()["paths"], "an API with no operations"
    docs = httpx.get(f"{service_url(service)}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def fuzz(service: str, session: requests.Session, headers: dict[str, str]) -> list[str]:
    """Every routed operation of the service, EXAMPLES valid and EXAMPLES invalid requests each;
    what broke the contract, one line per operation and mode (no shrinking: bounded time)."""
    schema = schemathesis.openapi.from_dict(routed_document(service))
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=GATEWAY, session=session, headers=dict(headers), checks=CHECKS
                )

            try:
                call()
            except Unsatisfiable:  # nothing of this operation can be made invalid (no input)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # every failure, reported together below
                summary = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:600]
                failures.append(f"{operation.label} [{mode.value}]: {summary}")
    return failures


@pytest.mark.parametrize(
    "service",
    [
        "account",
        "payment",
        "loyalty",
        "notify",
        "stores",
        "vas",
    ],
)
def test_every_routed_operation_keeps_its_contract_through_the_gateway(
    service: str, session: requests.Session, subscriber_headers: dict[str, str]
) -> None:
    failures = fuzz(service, session, subscriber_headers)
    assert not failures, f"{len(failures)} operations broke the contract:\n" + "\n".join(failures)
