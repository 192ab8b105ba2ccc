"""The push providers' endpoints, as a raw ASGI app (served over HTTP/2 by granian, see main.py).

- FCM HTTP v1: `POST /token` (OAuth2 JWT-bearer grant: a service account's RS256 assertion
  for an access token) and `POST /v1/projects/{project}/messages:send` (Bearer access token;
  `{"message": {"token": ...}}`; 404 UNREGISTERED, 400 INVALID_ARGUMENT, 429 QUOTA_EXCEEDED
  with Retry-After, 503 UNAVAILABLE).
- APNs: `POST /3/device/{token}` (`authorization: bearer <ES256 provider JWT>` with `kid`,
  `iss`; `apns-topic`; 410 Unregistered, 400 BadDeviceToken, 429 TooManyRequests, 503).
- Control (tests, benchmarks): `/sandbox/stats`, `/sandbox/deliveries`, `/sandbox/unregister`,
  `/sandbox/faults`, `/sandbox/reset`; `/health`, `/metrics`.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from .state import Faults, SandboxState

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

FCM_SEND = re.compile(r"^/v1/projects/([A-Za-z0-9_-]+)/messages:send$")
APNS_SEND = re.compile(r"^/3/device/([^/]+)$")
APNS_TOKEN = re.compile(r"^[0-9a-fA-F]{64}$")
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")

PUSH_REQUESTS = Counter(
    "push_sandbox_requests_total", "Sends answered, by provider and status", ["provider", "status"]
)


def _jwt_header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A JWT's header and claims, unverified (the sandbox does not hold the keys)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        decoded = [orjson.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]]
    except (ValueError, orjson.JSONDecodeError):
        return None
    header, claims = decoded
    return (header, claims) if isinstance(header, dict) and isinstance(claims, dict) else None


class PushSandbox:
    def __init__(self, state: SandboxState | None = None) -> None:
        self.state = state or SandboxState()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                if kind == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif kind == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self.state.http_versions[scope.get("http_version", "1.1")] += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, payload, extra = await self.route(scope["method"], scope["path"], headers, body)
        if isinstance(payload, bytes):
            content, ctype = payload, CONTENT_TYPE_LATEST
        else:
            content, ctype = orjson.dumps(payload), "application/json"
        out = [(b"content-type", ctype.encode()), *((k.encode(), v.encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": content})

    async def route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST":
            if match := APNS_SEND.match(path):
                return await self.apns_send(match.group(1), headers, body)
            if match := FCM_SEND.match(path):
                return await self.fcm_send(headers, body)
            if path == "/token":
                return self.fcm_token(body)
            if path.startswith("/sandbox/"):
                return self.control(path, _json(body))
        if method == "GET":
            if path == "/health":
                return 200, {"status": "ok", "service": "push-sandbox"}, {}
            if path == "/metrics":
                return 200, generate_latest(), {}
            if path == "/sandbox/stats":
                return 200, self.stats(), {}
        return 404, {"error": "not_found"}, {}

    # -- APNs -----------------------------------------------------------------------------

    async def apns_send(
        self, token: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        out = {"apns-id": apns_id}

        def answer(status: int, reason: str | None = None) -> tuple[int, Any, dict[str, str]]:
            self.state.responses[("apns", status)] += 1
            PUSH_REQUESTS.labels("apns", str(status)).inc()
            if reason is None:
                return status, {}, out
            payload: dict[str, Any] = {"reason": reason}
            if status == 410:
                payload["timestamp"] = int(time.time() * 1000)
            return (
                status,
                payload,
                out | ({"retry-after": str(self.state.faults.retry_after_s)} if status == 429 else {}),
            )

        scheme, _, jwt = headers.get("authorization", "").partition(" ")
        parsed = _jwt_header_and_claims(jwt) if scheme.lower() == "bearer" else None
        if (
            parsed is None
            or parsed[0].get("alg") != "ES256"
            or not parsed[0].get("kid")
            or not parsed[1].get("iss")
        ):
            return answer(403, "InvalidProviderToken")
        if not headers.get("apns-topic"):
            return answer(400, "MissingTopic")
        payload = _json(body)
        if not isinstance(payload, dict) or "aps" not in payload:
            return answer(400, "PayloadEmpty")
        if not APNS_TOKEN.match(token):
            return answer(400, "BadDeviceToken")
        fault = await self.state.fault()
        if fault == 429:
            return answer(429, "TooManyRequests")
        if fault == 503:
            return answer(503, "ServiceUnavailable")
        if token in self.state.unregistered:
            return answer(410, "Unregistered")
        self.state.deliver(token, headers.get("apns-collapse-id"))
        return answer(200)

    # -- FCM HTTP v1 ----------------------------------------------------------------------

    def fcm_token(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        parsed = _jwt_header_and_claims(form.get("assertion", ""))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or parsed is None:
            return 400, {"error": "invalid_grant", "error_description": "expected a JWT-bearer assertion"}, {}
        if parsed[0].get("alg") != "RS256" or not parsed[1].get("iss") or not parsed[1].get("scope"):
            return (
                400,
                {"error": "invalid_grant", "error_description": "RS256 assertion with iss and scope"},
                {},
            )
        access = "sandbox-" + secrets.token_urlsafe(24)
        self.state.issued_tokens.add(access)
        return 200, {"access_token": access, "expires_in": 3600, "token_type": "Bearer"}, {}

    async def fcm_send(self, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        def answer(
            status: int, code: str | None = None, message: str = ""
        ) -> tuple[int, Any, dict[str, str]]:
            self.state.responses[("fcm", status)] += 1
            PUSH_REQUESTS.labels("fcm", str(status)).inc()
            if code is None:
                return status, {"name": f"projects/sandbox/messages/{uuid.uuid4().hex}"}, {}
            statuses = {
                400: "INVALID_ARGUMENT",
                401: "UNAUTHENTICATED",
                404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED",
                503: "UNAVAILABLE",
            }
            error = {
                "code": status,
                "message": message or code,
                "status": statuses.get(status, "INTERNAL"),
                "details": [
                    {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
                ],
            }
            extra = {"retry-after": str(self.state.faults.retry_after_s)} if status == 429 else {}
            return status, {"error": error}, extra

        scheme, _, access = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or access not in self.state.issued_tokens:
            return answer(401, "THIRD_PARTY_AUTH_ERROR", "Request had invalid authentication credentials.")
        payload = _json(body)
        message = payload.get("message") if isinstance(payload, dict) else None
        token = message.get("token") if isinstance(message, dict) else None
        if not isinstance(token, str) or not FCM_TOKEN.match(token):
            return answer(
                400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"
            )
        fault = await self.state.fault()
        if fault == 429:
            return answer(429, "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'")
        if fault == 503:
            return answer(503, "UNAVAILABLE", "The service is currently unavailable.")
        if token in self.state.unregistered:
            return answer(404, "UNREGISTERED", "Requested entity was not found.")
        android = message.get("android") if isinstance(message, dict) else None
        tag = None
        if isinstance(android, dict):
            note = android.get("notification")
            tag = (note.get("tag") if isinstance(note, dict) else None) or android.get("collapse_key")
        self.state.deliver(token, tag)
        return answer(200)

    # -- control ----------------------------------------------------------------------------

    def control(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        body = body if isinstance(body, dict) else {}
        if path == "/sandbox/reset":
            self.state.reset()
            return 200, {"reset": True}, {}
        if path == "/sandbox/deliveries":
            tokens = body.get("tokens") or []
            collapse = body.get("collapse_id")
            return (
                200,
                {
                    t: {
                        "deliveries": self.state.deliveries.get(t, 0),
                        "shown": self.state.shown.get((t, collapse), 0) if collapse is not None else None,
                    }
                    for t in tokens
                },
                {},
            )
        if path == "/sandbox/unregister":
            self.state.unregistered.update(body.get("tokens") or [])
            return 200, {"unregistered": len(self.state.unregistered)}, {}
        if path == "/sandbox/faults":
            allowed = set(Faults.__dataclass_fields__)
            unknown = set(body) - allowed
            if unknown or not all(isinstance(v, int) and v >= 0 for v in body.values()):
                return 400, {"error": f"faults take non-negative integers among {sorted(allowed)}"}, {}
            for key, value in body.items():
                setattr(self.state.faults, key, value)
            return 200, vars(self.state.faults), {}
        return 404, {"error": "not_found"}, {}

    def stats(self) -> dict[str, Any]:
        return {
            "deliveries": sum(self.state.deliveries.values()),
            "tokens": len(self.state.deliveries),
            "responses": {f"{p}:{s}": n for (p, s), n in sorted(self.state.responses.items())},
            "http_versions": dict(self.state.http_versions),
            "faults": vars(self.state.faults),
        }


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
