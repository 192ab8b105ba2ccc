"""Tariff plan changes (within the same billing), requested in the app.

A change is one claim: the subscriber's next plan-change entry (`<msisdn>:plan:<n>`, unique),
carrying `PlanChanged` for the account service. Two changes at once both try the same `n`,
one wins and the other is told to retry, so the account never applies two changes decided on
the same plan. The current plan is the newest entry (of the current tenancy); before any, the
account service's directory says which billing the number has.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from mobi_contracts.events.vas import PlanChanged, PlanChangedData
from servicekit.directory import AccountDirectory
from servicekit.errors import ApiError, not_found
from servicekit.mongo import Doc

from .catalog import Catalog
from .charging import PRODUCER
from .consent_log import ConsentLog
from .domain.subscriptions import event_id_for


class Plans:
    def __init__(self, log: ConsentLog, catalog: Catalog, directory: AccountDirectory | None) -> None:
        self.log = log
        self.catalog = catalog
        self.directory = directory

    async def _changes(self, msisdn: str, since: datetime | None) -> list[Doc]:
        facts = await self.log.facts(msisdn)
        return sorted(
            (f for f in facts if f["action"] == "plan_changed" and (since is None or f["at"] >= since)),
            key=lambda f: int(f.get("seq", 0)),
        )

    async def billing(self, msisdn: str, since: datetime | None) -> str:
        changes = await self._changes(msisdn, since)
        if changes:
            return str(changes[-1]["billing"])
        return await self.live_billing(msisdn)

    async def live_billing(self, msisdn: str) -> str:
        """prepaid | postpaid of a live subscription, from the account service's directory: a
        number not ours is a 422, one not active a 409."""
        if self.directory is None:
            raise ApiError(503, "unavailable", "cannot check the subscription right now")
        found = await self.directory.subscriber(msisdn)
        if found is None:
            raise ApiError(422, "not_a_subscriber", f"{msisdn} is not a MobiFone subscription")
        if found.get("status", "active") != "active":
            raise ApiError(409, "subscription_not_active", "the subscription is not active")
        return str(found.get("plan", "prepaid"))

    async def change(
        self, msisdn: str, plan_code: str, now: datetime, correlation_id: str, since: datetime | None
    ) -> Doc:
        target = {p.code: p for p in await self.catalog.plans()}.get(plan_code)
        if target is None:
            raise not_found("plan")
        billing = await self.billing(msisdn, since)
        if billing != target.billing:
            raise ApiError(
                409, "not_allowed", f"moving to a {target.billing} plan needs a visit to a MobiFone store"
            )
        changes = await self._changes(msisdn, since)
        old = changes[-1]["detail"]["to"] if changes else None
        if old == plan_code:
            raise ApiError(409, "same_plan", "this is already your plan")
        seq = max((int(c.get("seq", 0)) for c in await self._changes(msisdn, None)), default=0) + 1
        change_id = uuid.uuid4().hex
        event = PlanChanged.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or change_id,
            event_id=event_id_for(msisdn, "plan", change_id),
            data=PlanChangedData(
                change_id=change_id,
                old_plan_code=old,
                new_plan_code=plan_code,
                billing=target.billing,
                effective_at=now,
            ),
        )
        if not await self.log.append(
            msisdn, f"{msisdn}:plan:{seq}", "plan_changed", "app", now, events=[event], seq=seq,
            billing=target.billing, detail={"from": old, "to": plan_code},
        ):  # fmt: skip
            raise ApiError(409, "busy", "another plan change is in progress; retry")
        return {
            "plan_code": plan_code,
            "name": target.name,
            "billing": target.billing,
            "previous": old,
            "effective_at": now,
        }
