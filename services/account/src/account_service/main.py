"""Account service: wiring only. Entry point `account-service`."""

from __future__ import annotations

from datetime import timedelta

from mobi_contracts.topics import ACCOUNT_EVENTS, SUBSCRIBER_LIFECYCLE
from servicekit.app import Service
from servicekit.auth import TokenSigner
from servicekit.cache import VersionedCache
from servicekit.mongo import Store

from . import api
from .audit import AuditSchedule, LedgerAudit
from .auth_flow import AuthService
from .domain.otp import OtpPolicy
from .domain.snapshots import SnapshotPolicy
from .handlers import ledger_handler
from .ledger import LedgerService
from .memory import LedgerMemory
from .otp_queue import OtpQueue, OtpSender
from .queries import AccountQueries
from .settings import AccountSettings
from .sms import SmppSender
from .store import INDEXES
from .subscribers import SubscriberRegistry


def create_service(settings: AccountSettings | None = None) -> Service:
    settings = settings or AccountSettings()
    service = Service(
        settings,
        title="My MobiFone account service",
        description="Logins, profile, balances, charges, top-up history and bills.",
        indexes=INDEXES,
    )
    if settings.jwt_private_key_file is None:
        raise RuntimeError("JWT_PRIVATE_KEY_FILE is required by the account service")
    signer = TokenSigner(
        settings.jwt_private_key_file.read_bytes(),
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.access_token_ttl_seconds,
    )
    otp_ttl = OtpPolicy().ttl_seconds
    sms = SmppSender(settings, valid_for=timedelta(seconds=otp_ttl))
    service.on_startup(sms.start)
    service.on_shutdown(sms.stop)
    pepper = settings.otp_pepper.get_secret_value().encode()
    otp_queue = OtpQueue(service.redis, pepper, otp_ttl)
    auth = AuthService(
        store=service.store,
        redis=service.redis,
        signer=signer,
        queue=otp_queue,
        pepper=pepper,
        service=settings.service_name,
        refresh_ttl=settings.refresh_token_ttl_seconds,
        gateway_key=settings.own_gateway_key,
    )
    service.provide("auth", auth)
    registry = SubscriberRegistry(service.store, service.publisher, auth, settings.service_name)
    service.provide("registry", registry)
    service.background(registry.run_completer)
    sender = OtpSender(
        otp_queue, sms, auth.is_active_subscriber, settings.service_name, charge=auth.limits.charge_delivery
    )
    service.background(sender.run_forever)
    balances = VersionedCache(service.redis, "balances", settings.balance_cache_ttl_seconds)
    service.provide("queries", AccountQueries(service.store, balances))
    snapshots = SnapshotPolicy(settings.snapshot_every, settings.snapshot_seconds, settings.snapshot_budget)
    # One ledger per lane (contracts: ACCOUNT_LEDGER_GROUP, ACCOUNT_USAGE_GROUP), sharing the
    # states they decided (memory.py); the journal serialises their decisions on a subscriber.
    memory = LedgerMemory()
    for lane in settings.lanes:
        ledger = LedgerService(
            service.store, service.publisher, cache=balances, snapshots=snapshots, memory=memory
        )
        service.on_shutdown(ledger.flush_snapshots)  # after the consumers stopped, before the store closes
        service.consume(lane, ledger_handler(ledger))
    payments = Store(
        settings.mongodb_url, settings.payment_database, app_name=f"{settings.service_name}-audit"
    )
    audit = AuditSchedule(
        LedgerAudit(service.store, payments), service.redis, settings.audit_interval_seconds
    )
    service.background(audit.run_forever)
    service.on_shutdown(payments.close)
    service.document_publishing(ACCOUNT_EVENTS)
    service.document_publishing(SUBSCRIBER_LIFECYCLE)
    service.include_router(api.auth)
    service.include_router(api.me)
    service.include_router(api.internal)
    return service


def run() -> None:
    create_service().run()
