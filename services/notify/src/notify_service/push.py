"""Push provider adapters: FCM HTTP v1 and APNs over HTTP/2 with token auth.

Neither provider has a batch API any more (FCM's batch send is gone; APNs never had one):
one HTTP/2 request per message, many streams at once on one connection. `Pusher` sends a
list of pushes with bounded concurrency; 429 and 5xx back off (the provider's Retry-After
when it gives one, and every sender waits with it, so the provider sets the pace) and retry;
tokens the provider reports as gone come back as UNREGISTERED for the caller to prune.

A push carries a collapse id (APNs `apns-collapse-id`, FCM android `tag` + `collapse_key`):
a phone shows one notification per collapse id, so a re-send after a crash (a request in
flight when the process died) replaces the notification instead of adding a second.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from curl_cffi.const import CurlHttpVersion
from curl_cffi.requests import AsyncSession
from curl_cffi.requests.exceptions import RequestException as CurlRequestError
from prometheus_client import Counter, Histogram

from .settings import NotifySettings

log = logging.getLogger(__name__)
# httpx (tests' in-process transport) logs every request at INFO: a million lines per campaign.
logging.getLogger("httpx").setLevel(logging.WARNING)
TRANSPORT_ERRORS = (httpx.HTTPError, CurlRequestError)


class ProviderResponse(Protocol):
    """What the adapters read of an answer (httpx's and curl_cffi's responses both fit)."""

    status_code: int

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...

    def raise_for_status(self) -> Any: ...


class ProviderHttp(Protocol):
    """An HTTP/2 client the adapters post through: `CurlHttp2` in the service, an httpx
    client on an in-process transport in the adapters' unit tests."""

    async def post(
        self, url: str, *, json: Any = None, data: Any = None, headers: dict[str, str] | None = None
    ) -> ProviderResponse: ...

    async def aclose(self) -> None: ...


PUSH_SENDS = Counter(
    "push_sends_total",
    "Push requests answered by the providers, by outcome: sent, unregistered, failed, retried",
    ["service", "provider", "outcome"],
)
PUSH_SECONDS = Histogram(
    "push_send_seconds",
    "Time of one push request to the provider",
    ["service", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class Outcome(enum.Enum):
    SENT = "sent"
    UNREGISTERED = "unregistered"  # the token is dead: prune the device
    FAILED = "failed"  # refused for good, or still failing after every try


@dataclass(frozen=True)
class Push:
    device_id: str
    platform: str  # fcm | apns
    token: str
    title: str
    body: str
    collapse_id: str
    deep_link: str = ""
    image_url: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    high_priority: bool = False
    expires_at: int | None = None  # epoch seconds


@dataclass(frozen=True)
class Answer:
    """One provider answer: final outcome, or retry (after `retry_after` seconds if given)."""

    outcome: Outcome | None
    retry_after: float | None = None
    refresh_auth: bool = False
    detail: str = ""


def _retry_after(response: ProviderResponse) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class FcmClient:
    """FCM HTTP v1: an OAuth2 access token from a service account's signed assertion."""

    provider = "fcm"

    def __init__(self, http: ProviderHttp, settings: NotifySettings) -> None:
        self.http = http
        self.base = settings.fcm_url.rstrip("/")
        self.project = settings.fcm_project_id
        account = _service_account(settings)
        self.client_email: str = account["client_email"]
        self.key_id: str = account.get("private_key_id", "local")
        self.private_key = account["private_key"]
        self.token_uri: str = settings.fcm_token_url
        self._access: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def _access_token(self) -> str:
        async with self._lock:
            if self._access and self._access[1] > time.time() + 60:
                return self._access[0]
            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": self.client_email,
                    "scope": FCM_SCOPE,
                    "aud": self.token_uri,
                    "iat": now,
                    "exp": now + 3600,
                },
                self.private_key,
                algorithm="RS256",
                headers={"kid": self.key_id},
            )
            r = await self.http.post(
                self.token_uri,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
            )
            r.raise_for_status()
            body = r.json()
            self._access = (body["access_token"], time.time() + float(body.get("expires_in", 3600)))
            return self._access[0]

    def forget_token(self) -> None:
        self._access = None

    def message(self, push: Push) -> dict[str, Any]:
        notification: dict[str, Any] = {"title": push.title, "body": push.body}
        if push.image_url:
            notification["image"] = push.image_url
        android: dict[str, Any] = {
            "collapse_key": push.collapse_id,
            "priority": "HIGH" if push.high_priority else "NORMAL",
            "notification": {"tag": push.collapse_id},
        }
        if push.expires_at:
            android["ttl"] = f"{max(0, push.expires_at - int(time.time()))}s"
        return {
            "message": {
                "token": push.token,
                "notification": notification,
                "data": {**push.data, "deep_link": push.deep_link},
                "android": android,
                "apns": {"headers": {"apns-collapse-id": push.collapse_id[:64]}},
            }
        }

    async def send(self, push: Push) -> Answer:
        token = await self._access_token()
        r = await self.http.post(
            f"{self.base}/v1/projects/{self.project}/messages:send",
            json=self.message(push),
            headers={"authorization": f"Bearer {token}"},
        )
        if r.status_code == 200:
            return Answer(Outcome.SENT)
        code = _fcm_error_code(r)
        if r.status_code == 404 or code == "UNREGISTERED":
            return Answer(Outcome.UNREGISTERED, detail=code)
        if r.status_code == 401:
            return Answer(None, refresh_auth=True, detail=code)
        return _retry_or_failed(r, code)


def _retry_or_failed(response: ProviderResponse, reason: str) -> Answer:
    """Both providers: 429 and 5xx are worth another try (after Retry-After when given); any
    other refusal is final."""
    detail = f"{response.status_code} {reason}"
    if response.status_code == 429 or response.status_code >= 500:
        return Answer(None, retry_after=_retry_after(response), detail=detail)
    return Answer(Outcome.FAILED, detail=detail)


def _fcm_error_code(response: ProviderResponse) -> str:
    try:
        error = response.json().get("error", {})
        for detail in error.get("details", []):
            if "errorCode" in detail:
                return str(detail["errorCode"])
        return str(error.get("status", ""))
    except (ValueError, AttributeError):
        return ""


class ApnsClient:
    """APNs provider API: token-based auth (an ES256 JWT, renewed every 30 minutes)."""

    provider = "apns"
    TOKEN_LIFETIME = 30 * 60  # APNs refuses tokens older than an hour, and renewals within 20 min

    def __init__(self, http: ProviderHttp, settings: NotifySettings) -> None:
        self.http = http
        self.base = settings.apns_url.rstrip("/")
        self.team_id = settings.apns_team_id
        self.key_id = settings.apns_key_id
        self.topic = settings.apns_topic
        self.key = _apns_key(settings)
        self._token: tuple[str, float] | None = None

    def provider_token(self) -> str:
        if self._token and self._token[1] > time.time():
            return self._token[0]
        token = jwt.encode(
            {"iss": self.team_id, "iat": int(time.time())},
            self.key,
            algorithm="ES256",
            headers={"kid": self.key_id},
        )
        self._token = (token, time.time() + self.TOKEN_LIFETIME)
        return token

    def forget_token(self) -> None:
        self._token = None

    def payload(self, push: Push) -> dict[str, Any]:
        aps: dict[str, Any] = {"alert": {"title": push.title, "body": push.body}, "sound": "default"}
        if push.image_url:
            aps["mutable-content"] = 1
        payload: dict[str, Any] = {"aps": aps, "deep_link": push.deep_link, **push.data}
        if push.image_url:
            payload["image_url"] = push.image_url
        return payload

    async def send(self, push: Push) -> Answer:
        headers = {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "10" if push.high_priority else "5",
            "apns-collapse-id": push.collapse_id[:64],
        }
        if push.expires_at:
            headers["apns-expiration"] = str(push.expires_at)
        r = await self.http.post(
            f"{self.base}/3/device/{push.token}", json=self.payload(push), headers=headers
        )
        if r.status_code == 200:
            return Answer(Outcome.SENT)
        reason = _apns_reason(r)
        if r.status_code == 410 or reason in ("BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"):
            return Answer(Outcome.UNREGISTERED, detail=reason)
        if r.status_code == 403 and reason == "ExpiredProviderToken":
            return Answer(None, refresh_auth=True, detail=reason)
        return _retry_or_failed(r, reason)


def _apns_reason(response: ProviderResponse) -> str:
    try:
        return str(response.json().get("reason", ""))
    except (ValueError, AttributeError):
        return ""


class Pusher:
    """Sends pushes through the right provider, `concurrency` requests in flight at most."""

    def __init__(self, settings: NotifySettings, http: ProviderHttp | None = None) -> None:
        self.service = settings.service_name
        self.http = http or provider_http_client(settings)
        self.clients: dict[str, FcmClient | ApnsClient] = {
            "fcm": FcmClient(self.http, settings),
            "apns": ApnsClient(self.http, settings),
        }
        self.gate = asyncio.Semaphore(settings.push_concurrency)
        self.max_attempts = settings.push_max_attempts
        self._paused_until = 0.0  # a 429 pauses every sender: the provider sets the pace

    async def close(self) -> None:
        await self.http.aclose()

    async def send_all(self, pushes: list[Push]) -> list[Outcome]:
        return list(await asyncio.gather(*(self.send(p) for p in pushes)))

    async def send(self, push: Push) -> Outcome:
        client = self.clients[push.platform]
        for attempt in range(self.max_attempts):
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.perf_counter()
            async with self.gate:
                try:
                    answer = await client.send(push)
                except TRANSPORT_ERRORS as exc:
                    answer = Answer(None, detail=repr(exc))
            PUSH_SECONDS.labels(self.service, client.provider).observe(time.perf_counter() - started)
            if answer.outcome is not None:
                PUSH_SENDS.labels(self.service, client.provider, answer.outcome.value).inc()
                return answer.outcome
            PUSH_SENDS.labels(self.service, client.provider, "retried").inc()
            if answer.refresh_auth:
                client.forget_token()
                continue
            delay = answer.retry_after
            if delay is None:
                delay = min(30.0, 0.2 * 2**attempt) * (0.5 + random.random())
            else:
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
            await asyncio.sleep(delay)
        log.warning(
            "push failed after retries", extra={"device": push.device_id, "provider": client.provider}
        )
        PUSH_SENDS.labels(self.service, client.provider, "failed").inc()
        return Outcome.FAILED


class CurlHttp2:
    """HTTP/2 to the providers through libcurl (curl_cffi): many streams on one connection,
    TLS + ALPN in production, cleartext with prior knowledge against the local sandbox.

    Not httpx: its pure-Python h2 stack spent about 2 ms of CPU per push here (430 pushes/s
    on a core, the sender the limit); libcurl sends 2,000+ on the same core. The session is
    made on first use, inside the running loop it belongs to."""

    def __init__(self, settings: NotifySettings) -> None:
        cleartext = settings.fcm_url.startswith("http://") and settings.apns_url.startswith("http://")
        self.version = CurlHttpVersion.V2_PRIOR_KNOWLEDGE if cleartext else CurlHttpVersion.V2TLS
        self.timeout = settings.push_timeout_seconds
        self.streams = settings.push_concurrency
        self._session: AsyncSession[Any] | None = None

    def _open(self) -> AsyncSession[Any]:
        if self._session is None:
            self._session = AsyncSession(
                max_clients=self.streams, http_version=self.version, timeout=self.timeout
            )
        return self._session

    async def post(
        self, url: str, *, json: Any = None, data: Any = None, headers: dict[str, str] | None = None
    ) -> ProviderResponse:
        response: ProviderResponse = await self._open().post(url, json=json, data=data, headers=headers)
        return response

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def provider_http_client(settings: NotifySettings) -> ProviderHttp:
    return CurlHttp2(settings)


def _service_account(settings: NotifySettings) -> dict[str, Any]:
    if settings.fcm_credentials.get_secret_value():
        inline: dict[str, Any] = json.loads(settings.fcm_credentials.get_secret_value())
        return inline
    if settings.fcm_credentials_file is not None:
        account: dict[str, Any] = json.loads(Path(settings.fcm_credentials_file).read_text())
        return account
    # Local only (settings refuse this elsewhere): a throw-away key the sandbox accepts.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"client_email": "notify@mymobifone-local.iam.gserviceaccount.com", "private_key": pem}


def _apns_key(settings: NotifySettings) -> Any:
    if settings.apns_key.get_secret_value():
        return serialization.load_pem_private_key(
            settings.apns_key.get_secret_value().encode(), password=None
        )
    if settings.apns_key_file is not None:
        return serialization.load_pem_private_key(Path(settings.apns_key_file).read_bytes(), password=None)
    return ec.generate_private_key(ec.SECP256R1())
