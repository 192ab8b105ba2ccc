"""The API gateway (real nginx started by deploy/local/gateway.sh) in front of real upstreams.

Each gateway gets its own state directory (MM_STATE) and free ports, and small Python HTTP
servers on the service ports echo what they received, so these tests run beside a running
platform without touching it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_SH = ROOT / "deploy" / "local" / "gateway.sh"
SERVICES = ("account", "vas", "payment", "loyalty", "notify", "stores")
CARRIER = "127.0.0.2"  # stands in for the carrier's header-enrichment proxy
EXEMPT = "127.0.0.3"  # the load benchmark's source address: never rate limited
# Each service's own X-Gateway-Key (GATEWAY_KEY_<NAME>).
GATEWAY_KEYS = {name: f"test-gateway-key-{name}-0123" for name in SERVICES}

if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
    pytest.skip(
        "nginx is not installed (deploy/local/install.sh system installs it)", allow_module_level=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with JSON describing it: service, method, path, headers, body size."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the gateway's upstream pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: EchoServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if "/slow" in self.path:
            time.sleep(1.5)
        status = 404 if self.path.endswith("/missing") else 200
        payload = {
            "service": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_bytes": len(body),
        }
        if status == 404:
            payload = {"error": "bill_not_found", "from": self.server.name}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # Services echo the request id themselves (servicekit): the gateway must not duplicate it.
        self.send_header("X-Request-Id", self.headers.get("X-Request-Id") or "none")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        super().__init__(("127.0.0.1", port), EchoHandler)


@dataclass
class Gateway:
    url: str
    port: int
    state: Path
    env: dict[str, str]
    upstreams: dict[str, int] = field(default_factory=dict)

    @property
    def access_log(self) -> Path:
        return self.state / "logs" / "gateway-access.log"

    def client(self, source: str = "127.0.0.1", **kwargs: object) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=10, **kwargs)  # type: ignore[arg-type]

    def raw(self, request_line: str, source: str = "127.0.0.1") -> tuple[int, bytes]:
        """Sends a request line byte for byte (httpx would normalise ../ and %2e)."""
        with socket.create_connection(("127.0.0.1", self.port), source_address=(source, 0)) as sock:
            sock.sendall(f"{request_line}\r\nHost: gw\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def log_entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]


def start_gateway(tmp: Path, services: str, live: tuple[str, ...], **overrides: str) -> tuple[Gateway, list]:
    """Starts echo upstreams for `live` and a gateway routing `services`; returns both."""
    state = tmp / "state"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_PORT") and not k.startswith("GATEWAY_KEY") and k != "SERVICES"
    }
    port = free_port()
    env.update(
        MM_STATE=str(state),
        GATEWAY_PORT=str(port),
        SERVICES=services,
        GATEWAY_WORKERS="2",
        CARRIER_PROXY_CIDRS=f"{CARRIER}/32",
        RATE_LIMIT_EXEMPT_CIDRS=f"{EXEMPT}/32",
    )
    env.pop("LOGS", None)
    env.pop("GATEWAY_RUN_DIR", None)
    env.update({f"GATEWAY_KEY_{name.upper()}": key for name, key in GATEWAY_KEYS.items()})
    env.update(overrides)
    servers = []
    upstreams = {}
    for name in SERVICES:
        upstream_port = free_port()
        env[f"{name.upper()}_PORT"] = str(upstream_port)
        upstreams[name] = upstream_port
        if name in live:
            server = EchoServer(name, upstream_port)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
    subprocess.run(["bash", str(GATEWAY_SH), "up"], env=env, check=True, capture_output=True, timeout=60)
    gateway = Gateway(f"http://127.0.0.1:{port}", port, state, env, upstreams)
    return gateway, servers


def stop_gateway(gateway: Gateway, servers: list) -> None:
    subprocess.run(
        ["bash", str(GATEWAY_SH), "down"], env=gateway.env, check=False, capture_output=True, timeout=60
    )
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Every service deployed and answering."""
    gw, servers = start_gateway(tmp_path_factory.mktemp("gw-all"), " ".join(SERVICES), SERVICES)
    try:
        yield gw
    finally:
        stop_gateway(gw, servers)


@pytest.fixture(scope="module")
def partial_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The default service set (account, payment): payment deployed but down, account slow-capable."""
    gw, servers = start_gateway(
        tmp_path_factory.mktemp("gw-partial"),
        "account payment",
        ("account",),
        GATEWAY_READ_TIMEOUT="1s",
    )
    try:
        yield gw
    finally:
        stop_gateway(gw, servers)


MSISDN = "84901234567"
MSISDN_VARIANTS = ("X-Nokia-MSISDN", "X-Up-Calling-Line-ID", "X-WAP-MSISDN", "X-MSISDN-Enc", "MSISDN")


def upstream_headers(response: httpx.Response) -> dict[str, list[str]]:
    """Header name (lower case) -> every value the upstream received."""
    assert response.status_code == 200, response.text
    received: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        received.setdefault(name.lower(), []).append(value)
    return received


def assert_gateway_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    return body


# --- Header enrichment -----------------------------------------------------------------------


def test_msisdn_from_carrier_proxy_reaches_the_service(gateway: Gateway) -> None:
    with gateway.client(CARRIER) as client:
        got = upstream_headers(client.post("/api/v1/auth/header-login", headers={"X-MSISDN": MSISDN}))
    assert got["x-msisdn"] == [MSISDN]
    assert got["x-network"] == ["carrier"]
    assert got["x-real-ip"] == [CARRIER]
    assert got["x-forwarded-for"] == [CARRIER]


def test_msisdn_from_the_internet_is_stripped(gateway: Gateway) -> None:
    with gateway.client() as client:
        got = upstream_headers(client.post("/api/v1/auth/header-login", headers={"X-MSISDN": MSISDN}))
    assert "x-msisdn" not in got
    assert got["x-network"] == ["internet"]


@pytest.mark.parametrize("source", ["127.0.0.1", CARRIER])
def test_msisdn_variants_never_reach_the_service(gateway: Gateway, source: str) -> None:
    headers = {name: MSISDN for name in MSISDN_VARIANTS}
    with gateway.client(source) as client:
        got = upstream_headers(client.get("/api/v1/me", headers=headers))
    for name in MSISDN_VARIANTS:
        assert name.lower() not in got, name
    # An underscore spelling must not be folded onto X-MSISDN either.
    with gateway.client(source) as client:
        got = upstream_headers(client.get("/api/v1/me", headers={"X_MSISDN": MSISDN}))
    assert "x-msisdn" not in got
    assert "x_msisdn" not in got


def test_forwarded_headers_do_not_make_a_client_trusted(gateway: Gateway) -> None:
    spoofed = {
        "X-MSISDN": MSISDN,
        "X-Forwarded-For": CARRIER,
        "X-Real-IP": CARRIER,
        "Forwarded": f"for={CARRIER}",
        "X-Network": "carrier",
    }
    with gateway.client() as client:
        got = upstream_headers(client.post("/api/v1/auth/header-login", headers=spoofed))
    assert "x-msisdn" not in got
    assert got["x-forwarded-for"] == ["127.0.0.1"]
    assert got["x-real-ip"] == ["127.0.0.1"]
    assert got["x-network"] == ["internet"]
    assert "forwarded" not in got


def test_malformed_msisdn_from_the_carrier_is_dropped(gateway: Gateway) -> None:
    with gateway.client(CARRIER) as client:
        for bad in ("84901234567, 84909999999", "abc", "849012345678901234", "' OR 1=1"):
            got = upstream_headers(client.get("/api/v1/me", headers={"X-MSISDN": bad}))
            assert "x-msisdn" not in got, bad
            assert got["x-network"] == ["carrier"]


def test_gateway_key_is_always_set_and_cannot_be_forged(gateway: Gateway) -> None:
    with gateway.client() as client:
        plain = upstream_headers(client.get("/api/v1/me"))
        forged = upstream_headers(client.get("/api/v1/me", headers={"X-Gateway-Key": "guess"}))
    assert plain["x-gateway-key"] == [GATEWAY_KEYS["account"]]
    assert forged["x-gateway-key"] == [GATEWAY_KEYS["account"]]


@pytest.mark.parametrize("source", ["127.0.0.1", CARRIER])
def test_payment_never_receives_the_account_services_key(gateway: Gateway, source: str) -> None:
    """Only the account key lets X-MSISDN log anyone in: a service that leaks the key it gets
    must not hold that one."""
    account_key = GATEWAY_KEYS["account"]
    with gateway.client(source) as client:
        for path in ("/api/v1/me/payments/P1", "/api/v1/payments/return"):
            for headers in ({}, {"X-Gateway-Key": account_key, "X-MSISDN": MSISDN}):
                got = upstream_headers(client.get(path, headers=headers))
                assert got["x-gateway-key"] == [GATEWAY_KEYS["payment"]], (path, headers)
        # The same connection, account then payment: the key follows the route, not the client.
        assert upstream_headers(client.get("/api/v1/me"))["x-gateway-key"] == [account_key]
        got = upstream_headers(client.post("/api/v1/me/bills/B1/pay", json={}))
        assert got["x-gateway-key"] == [GATEWAY_KEYS["payment"]]


def render_keys(tmp_path: Path, **keys: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "SERVICES": "account payment",
        "GATEWAY_PORT": "8080",
        "GATEWAY_RUN_DIR": str(tmp_path),
        "GATEWAY_UPSTREAM_TEMPLATE": "{name}:8000",
        **keys,
    }
    render_py = ROOT / "deploy" / "gateway" / "render.py"
    return subprocess.run(
        ["python3", str(render_py), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )


def test_render_needs_a_distinct_key_per_service(tmp_path: Path) -> None:
    missing = render_keys(tmp_path, GATEWAY_KEY="one-shared-key-0123", GATEWAY_KEY_ACCOUNT="account-key-0123")
    assert missing.returncode != 0
    assert "GATEWAY_KEY_PAYMENT is not set" in missing.stderr
    shared = render_keys(tmp_path, GATEWAY_KEY_ACCOUNT="same-key-0123", GATEWAY_KEY_PAYMENT="same-key-0123")
    assert shared.returncode != 0
    assert "each service needs its own" in shared.stderr
    bad = render_keys(tmp_path, GATEWAY_KEY_ACCOUNT='k"; default "x', GATEWAY_KEY_PAYMENT="payment-key-0123")
    assert bad.returncode != 0
    ok = render_keys(tmp_path, GATEWAY_KEY_ACCOUNT="account-key-0123", GATEWAY_KEY_PAYMENT="payment-key-0123")
    assert ok.returncode == 0, ok.stderr
    key_file = tmp_path / "out" / "gateway-key.conf"
    assert key_file.stat().st_mode & 0o777 == 0o600
    text = key_file.read_text()
    assert 'account "account-key-0123";' in text
    assert 'payment "payment-key-0123";' in text
    assert 'default "";' in text
    assert "key-0123" not in (tmp_path / "out" / "nginx.conf").read_text()


# --- One X-MSISDN only ----------------------------------------------------------------------


@pytest.mark.parametrize("source", [CARRIER, "127.0.0.1"])
@pytest.mark.parametrize(
    "headers",
    [
        [("X-MSISDN", "84909999999"), ("X-MSISDN", MSISDN)],  # the phone's own before the proxy's
        [("X-MSISDN", MSISDN), ("X-MSISDN", MSISDN)],
        [("X-MSISDN", MSISDN), ("x-msisdn", "84909999999")],
        [("x-MsIsDn", ""), ("X-MSISDN", MSISDN)],
    ],
)
def test_more_than_one_msisdn_header_is_refused(
    gateway: Gateway, source: str, headers: list[tuple[str, str]]
) -> None:
    with gateway.client(source) as client:
        response = client.post("/api/v1/auth/header-login", headers=headers)
        body = assert_gateway_error(response, 400, "duplicate_msisdn_header")
        assert "service" not in body  # never proxied: not the echo upstream's answer
        # One header from the carrier still passes.
        single = upstream_headers(client.post("/api/v1/auth/header-login", headers={"X-MSISDN": MSISDN}))
    assert single.get("x-msisdn") == ([MSISDN] if source == CARRIER else None)


# --- Request ids -----------------------------------------------------------------------------


def test_request_id_is_the_same_upstream_and_downstream(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.get("/api/v1/me/balances", headers={"X-Request-Id": "client-chosen-id"})
    got = upstream_headers(response)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert got["x-request-id"] == [response.headers["x-request-id"]]
    assert got["x-client-request-id"] == ["client-chosen-id"]
    # The service echoes the id too; the client still sees exactly one.
    assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]


# --- Route table -----------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/v1/auth/otp", "account"),
    ("POST", "/api/v1/auth/otp/verify", "account"),
    ("GET", "/api/v1/me", "account"),
    ("GET", "/api/v1/me/balances", "account"),
    ("GET", "/api/v1/me/charges", "account"),
    ("GET", "/api/v1/me/topups", "account"),
    ("GET", "/api/v1/me/bills", "account"),
    ("PUT", "/api/v1/me/password", "account"),
    ("POST", "/api/v1/me/topups/card", "payment"),
    ("POST", "/api/v1/me/topups/scratch-card", "payment"),
    ("POST", "/api/v1/me/bills/B1/pay", "payment"),
    ("GET", "/api/v1/me/payments/P1", "payment"),
    ("POST", "/api/v1/payments/provider/ipn", "payment"),
    ("GET", "/api/v1/payments/return", "payment"),
    ("GET", "/api/v1/vas/catalog", "vas"),
    ("GET", "/api/v1/me/vas", "vas"),
    ("POST", "/api/v1/me/vas/V1/subscribe", "vas"),
    ("PUT", "/api/v1/me/vas/guard", "vas"),
    ("GET", "/api/v1/loyalty/offers", "loyalty"),
    ("GET", "/api/v1/me/loyalty", "loyalty"),
    ("POST", "/api/v1/me/loyalty/transfers", "loyalty"),
    ("POST", "/api/v1/me/devices", "notify"),
    ("DELETE", "/api/v1/me/devices/D1", "notify"),
    ("GET", "/api/v1/me/promotions", "notify"),
    ("POST", "/api/v1/me/promotions/PR1/read", "notify"),
    ("GET", "/api/v1/me/notification-preferences", "notify"),
    ("PUT", "/api/v1/me/notification-preferences", "notify"),
    ("GET", "/api/v1/stores/nearest?lat=10.77&lon=106.70&limit=3", "stores"),
    ("GET", "/api/v1/stores/S1", "stores"),
    ("GET", "/api/v1/support/hotlines", "stores"),
    ("POST", "/api/v1/me/feedback", "stores"),
]


@pytest.mark.parametrize(("method", "path", "service"), ROUTES)
def test_each_path_reaches_its_service(gateway: Gateway, method: str, path: str, service: str) -> None:
    with gateway.client(EXEMPT) as client:
        response = client.request(method, path, json={} if method in ("POST", "PUT") else None)
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["service"] == service
    assert [v for k, v in echoed["headers"] if k.lower() == "x-gateway-key"] == [GATEWAY_KEYS[service]]
    assert echoed["method"] == method
    assert echoed["path"] == path  # passed on unchanged, query string included
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["server"] == "nginx"  # no version


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api/v1/unknown",
        "/api/v1/me/bills/B1",  # only .../pay is routed under a bill
        "/api/v1/me/topupsX",
        "/api/v1/me/vasX",
        "/api/v2/me",
        "/internal/v1/promotions",
        "/internal/",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/ready",
        "/health",
        "/asyncapi",
    ],
)
def test_unknown_and_internal_paths_are_404_json(gateway: Gateway, path: str) -> None:
    with gateway.client(EXEMPT) as client:
        assert_gateway_error(client.get(path), 404, "not_found")
        assert_gateway_error(client.post(path, json={}), 404, "not_found")


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /internal/v1/promotions HTTP/1.1",
        "GET /api/v1/auth/../../internal/v1/promotions HTTP/1.1",
        "GET /internal/../api/v1/me HTTP/1.1",
        "GET /api/v1/me/%2e%2e/%2e%2e/internal/v1/promotions HTTP/1.1",
        "GET /api/v1/auth/..%2f..%2finternal%2fv1 HTTP/1.1",
        "GET /api/v1/vas/%2E%2E/../metrics HTTP/1.1",
    ],
)
def test_path_tricks_never_reach_a_service(gateway: Gateway, request_line: str) -> None:
    status, body = gateway.raw(request_line, EXEMPT)
    assert status in (400, 404)
    assert json.loads(body)["error"] in ("bad_request", "not_found")  # the gateway's, not an echo


def raw_bytes(gateway: Gateway, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", gateway.port), source_address=(EXEMPT, 0)) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /api/v1/me\x01 HTTP/1.1\r\nHost: gw\r\n\r\n", 400, "bad_request"),
        (b"GET /api/v1/me/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n", 414, "uri_too_long"),
        (b"GET /api/v1/me HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 400, "header_too_large"),
        (b"GET /api/v1/me HTTP/1.1\r\nHost: gw\r\nContent-Length: x\r\n\r\n", 400, "bad_request"),
        (b"TRACE /api/v1/me HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", 405, "method_not_allowed"),
        (
            b"POST /api/v1/me/feedback HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            "not_implemented",
        ),
        (
            b"POST /api/v1/me/feedback HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "not_implemented",
        ),
    ],
)
def test_malformed_requests_get_json_errors(gateway: Gateway, data: bytes, status: int, code: str) -> None:
    got_status, headers, body = raw_bytes(gateway, data)
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["error"] == code
    assert payload["request_id"] == headers["x-request-id"]


def test_a_services_own_errors_pass_through(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.get("/api/v1/me/payments/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "bill_not_found", "from": "payment"}


def test_healthz(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- Absent, down and slow services ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/vas/catalog", "vas"),
        ("/api/v1/me/vas", "vas"),
        ("/api/v1/me/loyalty", "loyalty"),
        ("/api/v1/me/promotions", "notify"),
        ("/api/v1/stores/nearest", "stores"),
        ("/api/v1/me/feedback", "stores"),
    ],
)
def test_absent_service_is_503_json(partial_gateway: Gateway, path: str, service: str) -> None:
    with partial_gateway.client() as client:
        body = assert_gateway_error(client.get(path), 503, "service_unavailable")
    assert body["service"] == service


def test_deployed_service_that_is_down_is_502_json(partial_gateway: Gateway) -> None:
    with partial_gateway.client() as client:
        body = assert_gateway_error(client.post("/api/v1/me/topups/card", json={}), 502, "bad_gateway")
    assert body["service"] == "payment"


def test_slow_service_is_504_json(partial_gateway: Gateway) -> None:
    with partial_gateway.client() as client:
        body = assert_gateway_error(client.get("/api/v1/auth/slow"), 504, "gateway_timeout")
    assert body["service"] == "account"


def test_default_service_set_still_routes_account(partial_gateway: Gateway) -> None:
    with partial_gateway.client() as client:
        assert client.get("/api/v1/me").json()["service"] == "account"


# --- Body size and rate limits -----------------------------------------------------------------


def test_body_over_the_limit_is_413_json(gateway: Gateway) -> None:
    with gateway.client(EXEMPT) as client:
        ok = client.post("/api/v1/me/feedback", content=b"x" * 60_000)
        assert ok.status_code == 200
        assert ok.json()["body_bytes"] == 60_000
        too_big = client.post("/api/v1/me/feedback", content=b"x" * 70_000)
    assert_gateway_error(too_big, 413, "payload_too_large")


def hammer(gateway: Gateway, source: str, path: str, count: int, **headers: str) -> list[httpx.Response]:
    with gateway.client(source) as client:
        return [client.post(path, json={}, headers=headers) for _ in range(count)]


def test_auth_rate_limit_is_429_json_with_retry_after(gateway: Gateway) -> None:
    responses = hammer(gateway, "127.0.0.5", "/api/v1/auth/otp", 30)
    statuses = [r.status_code for r in responses]
    # 5 r/s with a burst of 10: the first 11 pass at once, most of the rest are refused.
    assert statuses[:10] == [200] * 10
    assert statuses.count(429) >= 10
    refused = next(r for r in responses if r.status_code == 429)
    assert_gateway_error(refused, 429, "too_many_requests")
    assert refused.headers["retry-after"] == "1"
    assert "retry-after" not in responses[0].headers


def test_general_rate_limit(gateway: Gateway) -> None:
    statuses = [r.status_code for r in hammer(gateway, "127.0.0.6", "/api/v1/me/devices", 90)]
    assert statuses[:40] == [200] * 40
    assert statuses.count(429) >= 20


def test_rate_limit_keys_are_per_client(gateway: Gateway) -> None:
    assert 429 in [r.status_code for r in hammer(gateway, "127.0.0.7", "/api/v1/auth/otp", 25)]
    # Another address, and other subscribers behind the same carrier proxy, are not affected.
    assert [r.status_code for r in hammer(gateway, "127.0.0.8", "/api/v1/auth/otp", 5)] == [200] * 5
    a = hammer(gateway, CARRIER, "/api/v1/auth/header-login", 25, **{"X-MSISDN": "84900000001"})
    assert 429 in [r.status_code for r in a]
    b = hammer(gateway, CARRIER, "/api/v1/auth/header-login", 5, **{"X-MSISDN": "84900000002"})
    assert [r.status_code for r in b] == [200] * 5


def test_exempt_address_is_not_limited(gateway: Gateway) -> None:
    statuses = [r.status_code for r in hammer(gateway, EXEMPT, "/api/v1/auth/otp", 120)]
    assert statuses == [200] * 120


# --- Logs ----------------------------------------------------------------------------------------


def test_access_log_is_json_with_request_id_and_no_query(gateway: Gateway) -> None:
    with gateway.client(CARRIER) as client:
        ok = client.get(
            "/api/v1/stores/nearest?lat=10.77&lon=106.70&otp=123456", headers={"X-MSISDN": MSISDN}
        )
        missing = client.get("/nowhere?token=secret-token")
    wanted = {ok.headers["x-request-id"]: 200, missing.headers["x-request-id"]: 404}
    deadline = time.monotonic() + 5
    found: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline and len(found) < 2:
        found = {e["request_id"]: e for e in gateway.log_entries() if e["request_id"] in wanted}  # type: ignore[misc]
        time.sleep(0.05)
    assert set(found) == set(wanted)
    text = gateway.access_log.read_text()
    assert "123456" not in text
    assert "secret-token" not in text
    assert MSISDN not in text
    entry = found[ok.headers["x-request-id"]]
    assert entry["status"] == 200
    assert entry["uri"] == "/api/v1/stores/nearest"
    assert entry["method"] == "GET"
    assert entry["remote_addr"] == CARRIER
    assert entry["network"] == "carrier"
    assert entry["enriched"] is True
    assert entry["service"] == "stores"
    assert entry["upstream_addr"] == f"127.0.0.1:{gateway.upstreams['stores']}"
    for key in ("time", "bytes", "request_time", "upstream_response_time", "user_agent"):
        assert key in entry
    assert found[missing.headers["x-request-id"]]["status"] == 404


def test_reload_applies_a_new_service_set(gateway: Gateway) -> None:
    """reload re-renders from the environment and HUPs nginx; an invalid config is refused."""
    env = dict(gateway.env, SERVICES="account payment vas loyalty notify")
    subprocess.run(["bash", str(GATEWAY_SH), "reload"], env=env, check=True, capture_output=True, timeout=60)
    try:
        deadline = time.monotonic() + 5
        with gateway.client(EXEMPT) as client:
            while client.get("/api/v1/stores/S1").status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert_gateway_error(client.get("/api/v1/stores/S1"), 503, "service_unavailable")
            assert client.get("/api/v1/me/vas").json()["service"] == "vas"
        bad = dict(env, CARRIER_PROXY_CIDRS="0.0.0.0/0")
        result = subprocess.run(["bash", str(GATEWAY_SH), "reload"], env=bad, capture_output=True, timeout=60)
        assert result.returncode != 0
        assert b"every address" in result.stderr
    finally:
        subprocess.run(["bash", str(GATEWAY_SH), "reload"], env=gateway.env, check=True, capture_output=True)
    with gateway.client(EXEMPT) as client:
        deadline = time.monotonic() + 5
        while client.get("/api/v1/stores/S1").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/v1/stores/S1").json()["service"] == "stores"


# --- Zero-rated app traffic (docs/zero-rating.md) -------------------------------------------------

ZERO_RATED_HOST = "app-api.mobifone.vn"


@pytest.fixture(scope="module")
def zero_rated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, int]]:
    """Every service deployed, and the zero-rated listener on a port of its own."""
    zr_port = free_port()
    gw, servers = start_gateway(
        tmp_path_factory.mktemp("gw-zero-rated"),
        " ".join(SERVICES),
        SERVICES,
        GATEWAY_ZERO_RATED_PORT=str(zr_port),
        GATEWAY_ZERO_RATED_HOST=ZERO_RATED_HOST,
    )
    try:
        yield gw, zr_port
    finally:
        stop_gateway(gw, servers)


def zero_rated_client(port: int, host: str = ZERO_RATED_HOST, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Host": host}, transport=transport, timeout=10
    )


def app_routes() -> list[tuple[str, str, str]]:
    """(path to request, owning service, audience) for every route of routes.tsv."""
    routes = []
    for raw in (ROOT / "deploy" / "gateway" / "routes.tsv").read_text().splitlines():
        line = raw.split("#", 1)[0].split()
        if line:
            match, path, service, _, audience = line
            concrete = {"exact": path, "prefix": path + "x", "regex": "/api/v1/me/bills/b1/pay"}[match]
            routes.append((concrete, service, audience))
    return routes


def test_the_zero_rated_host_answers_every_app_route(zero_rated: tuple[Gateway, int]) -> None:
    _, port = zero_rated
    app = [(path, service) for path, service, audience in app_routes() if audience == "app"]
    assert len(app) > 20
    with zero_rated_client(port) as client:
        for path, service in app:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["service"] == service, path


def test_the_zero_rated_host_refuses_partner_routes_and_everything_else(
    zero_rated: tuple[Gateway, int],
) -> None:
    gateway, port = zero_rated
    partner = [path for path, _, audience in app_routes() if audience == "partner"]
    assert partner == ["/api/v1/payments/x"]
    refused = [
        "/api/v1/payments/provider/ipn?vnp_TxnRef=1",
        "/api/v1/payments/provider/return",
        "/internal/v1/subscribers/84901234567",
        "/metrics",
        "/docs",
        "/",
        "/api/v1/no-such-endpoint",
    ]
    with zero_rated_client(port) as client:
        for path in refused:
            assert_gateway_error(client.post(path), 404, "not_found")
            assert_gateway_error(client.get(path), 404, "not_found")
    # The same partner route on the normal host reaches the payment service.
    with gateway.client() as client:
        assert client.get("/api/v1/payments/provider/ipn").json()["service"] == "payment"


def test_the_zero_rated_listener_answers_no_other_host(zero_rated: tuple[Gateway, int]) -> None:
    """Anything but the app's host there would be free data for any site: refused before
    routing, whatever the path."""
    _, port = zero_rated
    for host in ("example.com", "app-api.mobifone.vn.evil.example", "127.0.0.1", "mobifone.vn"):
        with zero_rated_client(port, host) as client:
            assert_gateway_error(client.get("/api/v1/me/balances"), 421, "misdirected_request")
    # An absolute-form request (as to a forward proxy) names its own host: refused too.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = f"GET http://example.com/api/v1/me HTTP/1.1\r\nHost: {ZERO_RATED_HOST}\r\n"
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.split()[1] == b"421"
    # A tunnel is no request nginx serves.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.split()[1] in (b"400", b"405")


def test_header_enrichment_works_on_the_zero_rated_host(zero_rated: tuple[Gateway, int]) -> None:
    _, port = zero_rated
    with zero_rated_client(port, source=CARRIER) as client:
        got = upstream_headers(client.post("/api/v1/auth/header-login", headers={"X-MSISDN": MSISDN}))
    assert got["x-msisdn"] == [MSISDN]
    assert got["x-network"] == ["carrier"]
    assert got["host"] == [ZERO_RATED_HOST]


def test_the_normal_host_is_unchanged_by_the_zero_rated_listener(zero_rated: tuple[Gateway, int]) -> None:
    gateway, _ = zero_rated
    with gateway.client(headers={"Host": "api.mymobifone.example"}) as client:
        assert client.get("/api/v1/me/balances").json()["service"] == "account"
    with gateway.client(headers={"Host": ZERO_RATED_HOST}) as client:  # charged, but served
        assert client.get("/api/v1/payments/provider/return").json()["service"] == "payment"
