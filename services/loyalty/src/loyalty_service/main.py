"""Loyalty service: wiring only. Entry point `loyalty-service`."""

from __future__ import annotations

from mobi_contracts.topics import LOYALTY_EVENTS, LOYALTY_GROUP
from servicekit.app import Service
from servicekit.directory import AccountDirectory
from servicekit.outbox import OutboxRelay

from . import api
from .domain.rules import EarningRules, Eligibility, TransferRules
from .domain.snapshots import SnapshotPolicy
from .handlers import loyalty_handler
from .jobs import ProgrammeJobs, Schedules
from .ledger import PointsLedger
from .offers import Offers
from .programme import Programme
from .redemptions import Redemptions
from .settings import LoyaltySettings
from .store import CARD_REQUESTS, ECODE_CLAIMS, INDEXES
from .tenancy import MembershipEnds


def create_service(settings: LoyaltySettings | None = None) -> Service:
    settings = settings or LoyaltySettings()
    service = Service(
        settings,
        title="My MobiFone loyalty service",
        description="Kết Nối Dài Lâu: membership, tiers, points, transfers, redemptions, partner E-codes.",
        indexes=INDEXES,
    )
    name = settings.service_name
    snapshots = SnapshotPolicy(settings.snapshot_every, settings.snapshot_seconds, settings.snapshot_budget)
    ledger = PointsLedger(service.store, service.publisher, name, snapshots=snapshots)
    directory = AccountDirectory(settings.account_internal_url, name, settings.own_internal_key)
    programme = Programme(
        service.store,
        ledger,
        directory,
        earning=EarningRules(
            vnd_per_point=settings.vnd_per_point,
            max_points_per_event=settings.max_points_per_event,
            max_per_month=settings.max_earned_points_per_month,
            valid_months=settings.points_valid_months,
            tenure_points_per_year=settings.tenure_points_per_year,
            tenure_points_max=settings.tenure_points_max,
        ),
        transfers=TransferRules(
            min_points=settings.transfer_min_points,
            max_points=settings.transfer_max_points,
            daily_max=settings.transfer_daily_max_points,
            min_remaining=settings.transfer_min_remaining,
        ),
        eligibility=Eligibility(settings.enroll_min_tenure_days, settings.require_known_tenure),
        welcome_points=settings.welcome_points,
    )
    claims = OutboxRelay(service.store, service.publisher, name, ECODE_CLAIMS)
    cards = OutboxRelay(service.store, service.publisher, name, CARD_REQUESTS)
    jobs = ProgrammeJobs(programme)
    schedules = Schedules(
        jobs, service.redis, settings.jobs_interval_seconds, settings.recovery_interval_seconds
    )
    offers = Offers(service.store, ledger, claims, cards)
    redemptions = Redemptions(service.store, ledger)
    service.provide("programme", programme)
    service.provide("redemptions", redemptions)
    service.provide("offers", offers)
    service.provide("jobs", jobs)
    service.provide("schedules", schedules)
    for relay in (ledger.relay, claims, cards):
        service.relay_outbox(relay)
    service.background(ledger.run_snapshot_writer)
    service.background(schedules.run_programme)
    service.background(schedules.run_recovery)
    service.on_shutdown(directory.close)
    service.consume(LOYALTY_GROUP, loyalty_handler(programme, redemptions, MembershipEnds(programme, offers)))
    service.document_publishing(LOYALTY_EVENTS)
    for router in (api.me, api.public, api.internal):
        service.include_router(router)
    return service


def run() -> None:
    create_service().run()
