"""Redemptions: points taken now, the reward granted by the service that owns it (the account
service for airtime and data, the VAS service for a VAS), a refusal putting the points back
once. A refusal that comes after the membership ended gives nothing back (its points closed
with it: the number's next owner inherits none)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import (
    PointsRedeemed,
    PointsRedeemedData,
    PointsReversed,
    PointsReversedData,
    RedemptionGranted,
    RedemptionRefused,
    RedemptionReward,
)
from servicekit.errors import ApiError
from servicekit.mongo import Doc, Store
from servicekit.tenancy import EPOCH, of_tenancy

from .domain.rules import CATALOGUE
from .domain.wallet import Wallet, now_ms, put_back, spend
from .ledger import Decision, NotMember, PointsLedger
from .metrics import REDEMPTIONS as REDEMPTIONS_TOTAL
from .programme import _common, derived_id, event_id, not_a_member
from .store import REDEMPTIONS

log = logging.getLogger(__name__)


class Redemptions:
    def __init__(self, store: Store, ledger: PointsLedger, clock: Callable[[], datetime] = now_ms) -> None:
        self.store = store
        self.ledger = ledger
        self.clock = clock

    async def redeem(
        self, msisdn: str, code: str, idempotency_key: str, correlation_id: str, owner_since: datetime = EPOCH
    ) -> dict[str, Any]:
        item = CATALOGUE.get(code)
        if item is None:
            raise ApiError(404, "not_found", f"no redemption {code!r} in the catalogue")
        redemption_id = derived_id("rdm", msisdn, idempotency_key)
        key = f"redeem:{redemption_id}"
        # A retry finds its entry by the failed insert (see PointsLedger.append).
        now = self.clock()
        reward = RedemptionReward(kind=item.kind, catalog_code=item.code, **item.reward)

        def decide(wallet: Wallet) -> Decision:
            if not wallet.is_open_for(owner_since):
                raise NotMember(msisdn)
            change = spend(wallet, item.points)
            event = PointsRedeemed.new(
                **_common(msisdn, correlation_id, None),
                event_id=event_id(key, "redeemed"),
                data=PointsRedeemedData(
                    redemption_id=redemption_id, points=item.points, reward=reward, redeemed_at=now
                ),
            )
            detail = {
                "redemption_id": redemption_id,
                "catalog_code": code,
                "title": item.title,
                "points": item.points,
                "granter": reward.granter,
            }
            return Decision("redeem", change, detail, [event])

        try:
            existing, fresh = await self.ledger.append(msisdn, key, decide)
        except NotMember as exc:
            raise not_a_member() from exc
        if existing["detail"]["catalog_code"] != code:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used for another redemption"
            )
        await self._record_redemption(existing)
        if fresh:
            REDEMPTIONS_TOTAL.labels("requested").inc()
        return await self.redemption(msisdn, redemption_id, owner_since)

    async def _record_redemption(self, entry: Doc) -> None:
        d = entry["detail"]
        await self.store.insert_new(
            REDEMPTIONS,
            [
                {
                    "_id": d["redemption_id"],
                    "member": entry["member"],
                    "catalog_code": d["catalog_code"],
                    "title": d["title"],
                    "points": d["points"],
                    "granter": d["granter"],
                    "status": "pending",
                    "at": entry["at"],
                }
            ],
        )

    async def redemption(
        self, msisdn: str, redemption_id: str, owner_since: datetime = EPOCH
    ) -> dict[str, Any]:
        doc = await self.store[REDEMPTIONS].find_one({"_id": redemption_id, "member": msisdn})
        if doc is None or not of_tenancy(doc.get("at"), owner_since):
            raise ApiError(404, "not_found", "redemption not found")
        doc["redemption_id"] = doc.pop("_id")
        doc.pop("member", None)
        return doc

    async def on_answers(self, events: Sequence[AnyEvent]) -> list[Doc]:
        """The granters' answers: a grant is recorded; a refusal puts the points back, once."""
        reversed_entries: list[Doc] = []
        for event in events:
            if not isinstance(event, RedemptionGranted | RedemptionRefused):
                continue
            rid = event.data.redemption_id
            entry = await self.ledger.entry(f"redeem:{rid}")
            if entry is None or entry["member"] != event.subject:
                log.warning("answer to an unknown redemption", extra={"redemption_id": rid})
                continue
            await self._record_redemption(entry)
            if isinstance(event, RedemptionGranted):
                REDEMPTIONS_TOTAL.labels("granted").inc()
                await self.store[REDEMPTIONS].update_one(
                    {"_id": rid, "status": "pending"},
                    {"$set": {"status": "granted", "answered_at": event.data.granted_at}},
                )
                continue
            REDEMPTIONS_TOTAL.labels("refused").inc()
            if await self._same_membership(entry):
                reversed_entries.append(await self._reverse(entry, event))
            await self.store[REDEMPTIONS].update_one(
                {"_id": rid},
                {
                    "$set": {
                        "status": "refused",
                        "reason": event.data.reason,
                        "answered_at": event.data.refused_at,
                    }
                },
            )
        return reversed_entries

    async def _same_membership(self, entry: Doc) -> bool:
        """A refusal after the membership ended gives nothing back: its points closed with it
        (they must not reach the number's next owner)."""
        wallet = await self.ledger.wallet(entry["member"])
        if wallet is None or wallet.closed:
            return False
        return wallet.enrolled_at is None or entry["at"] >= wallet.enrolled_at

    async def _reverse(self, entry: Doc, refusal: RedemptionRefused) -> Doc:
        rid = refusal.data.redemption_id
        key = f"redeem:{rid}:reversed"
        reason = f"{refusal.data.reason}: {refusal.data.detail}"[:200]

        def decide(wallet: Wallet) -> Decision:
            change = put_back(wallet, entry["buckets"])
            event = PointsReversed.new(
                **_common(wallet.msisdn, refusal.correlation_id, str(refusal.event_id)),
                event_id=event_id(key, "reversed"),
                data=PointsReversedData(
                    entry_id=key,
                    redemption_id=rid,
                    points=change.delta,
                    reason=reason,
                    balance_after=change.state.points,
                ),
            )
            return Decision("reverse", change, {"redemption_id": rid, "reason": reason}, [event])

        doc, _ = await self.ledger.append(entry["member"], key, decide, relay=False)
        return doc
