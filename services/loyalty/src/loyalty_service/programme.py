"""The programme's use cases on the points ledger: enrol, earn, transfer, redeem, reverse.

A number's membership is its current owner's: the views and the use cases of a caller see
only a membership enrolled in the caller's tenancy (the token's `owner_since`). When the
number changes hands, the membership is closed (its points go: tenancy.py); the new owner
enrols afresh on the same ledger chain (its `seq` runs on), as a new `membership`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mobi_contracts import AnyEvent
from mobi_contracts.events.loyalty import (
    MemberEnrolled,
    MemberEnrolledData,
    PointsEarned,
    PointsEarnedData,
    PointsTransferred,
    PointsTransferredData,
)
from mobi_contracts.events.payment import BillPaid, TopupRecorded
from servicekit.directory import AccountDirectory
from servicekit.errors import ApiError
from servicekit.mongo import Doc, Store
from servicekit.tenancy import EPOCH
from servicekit.vntime import month_start

from .domain.rules import PRIVILEGES, EarningRules, Eligibility, TransferRules, tier_progress
from .domain.wallet import (
    Refused,
    Wallet,
    close,
    earn,
    now_ms,
    put_back,
    reopened,
    send,
    set_tier,
    to_document,
)
from .ledger import Decision, NotMember, PointsLedger
from .store import LEDGER, WALLETS

log = logging.getLogger(__name__)
PRODUCER = "loyalty-service"
_IDS = uuid.UUID("0d3e5b8a-7c41-4f62-9a1e-5b7c2d8f4e10")


def event_id(key: str, what: str) -> uuid.UUID:
    """The same change always announces itself with the same event id (consumers dedupe)."""
    return uuid.uuid5(_IDS, f"{key}:{what}")


def not_a_member() -> ApiError:
    return ApiError(404, "not_a_member", "not a member of Kết Nối Dài Lâu: enrol first")


def derived_id(prefix: str, msisdn: str, idempotency_key: str) -> str:
    """A resource id derived from the client's Idempotency-Key: a retry finds it."""
    return f"{prefix}{uuid.uuid5(_IDS, f'{msisdn}:{idempotency_key}').hex[:20]}"


class Programme:
    def __init__(
        self,
        store: Store,
        ledger: PointsLedger,
        directory: AccountDirectory,
        *,
        earning: EarningRules,
        transfers: TransferRules,
        eligibility: Eligibility,
        welcome_points: int = 0,
        clock: Callable[[], datetime] = now_ms,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.directory = directory
        self.earning = earning
        self.transfers = transfers
        self.eligibility = eligibility
        self.welcome_points = welcome_points
        self.clock = clock

    # -- enrolment and reading ----------------------------------------------------------------

    async def enroll(
        self, msisdn: str, correlation_id: str, owner_since: datetime = EPOCH
    ) -> tuple[dict[str, Any], bool]:
        """(the membership, True when it was created now). Idempotent."""
        now = self.clock()
        wallet = await self.ledger.wallet(msisdn)
        if wallet is not None and not wallet.is_open_for(owner_since):
            created = await self._enroll_again(wallet, correlation_id, owner_since, now)
            return await self.summary(msisdn, owner_since), created
        created = False
        if wallet is None:
            subscriber = await self.directory.subscriber(msisdn)
            since = self.eligibility.check(subscriber, now)
            fresh = to_document(Wallet(msisdn=msisdn, enrolled_at=now))
            created = await self.store.claim(WALLETS, msisdn, **fresh, since=since)
        # Every call makes sure of the enrolment entry (a crash may have come between the two).
        key = f"enroll:{msisdn}"
        await self.ledger.append(msisdn, key, lambda w: self._enrolment(w, key, now, correlation_id))
        return await self.summary(msisdn, owner_since), created

    async def _enroll_again(
        self, wallet: Wallet, correlation_id: str, owner_since: datetime, now: datetime
    ) -> bool:
        """The number's membership is a previous owner's: close it (unless the lifecycle event
        did already), then a fresh one for this tenancy (keyed by it: a double tap enrols once)."""
        msisdn = wallet.msisdn
        subscriber = await self.directory.subscriber(msisdn)
        since = self.eligibility.check(subscriber, now)  # the new owner's own tenure
        await self.close_membership(wallet)
        membership = str(int(owner_since.timestamp() * 1000))
        key = f"enroll:{msisdn}:{membership}"
        _, fresh = await self.ledger.append(
            msisdn, key, lambda w: self._enrolment(reopened(w, now, membership), key, now, correlation_id)
        )
        await self.store[WALLETS].update_one({"_id": msisdn}, {"$set": {"since": since}})
        return fresh

    async def close_membership(self, wallet: Wallet) -> Doc | None:
        """End `wallet`'s membership and its points (once: keyed by the membership)."""
        enrolled = wallet.enrolled_at or EPOCH
        key = f"close:{wallet.msisdn}:{int(enrolled.timestamp() * 1000)}"

        def decide(w: Wallet) -> Decision:
            if w.closed or w.membership != wallet.membership:
                raise Refused("already_closed", "this membership is over already")
            return Decision("close", close(w), {"membership": w.membership, "points": w.points})

        try:
            doc, _ = await self.ledger.append(wallet.msisdn, key, decide)
        except Refused:
            return None
        return doc

    def _enrolment(self, wallet: Wallet, key: str, now: datetime, correlation_id: str) -> Decision:
        common = _common(wallet.msisdn, correlation_id, None)
        events: list[AnyEvent] = [
            MemberEnrolled.new(
                **common,
                event_id=event_id(key, "enrolled"),
                data=MemberEnrolledData(tier=wallet.tier, enrolled_at=now),
            )
        ]
        if self.welcome_points <= 0:  # an entry all the same: it carries the event
            return Decision("enroll", set_tier(wallet, wallet.tier), {}, events)
        change = earn(wallet, self.welcome_points, now, self.earning.valid_months, counts_for_tier=False)
        events.append(
            self._earned_event(
                key, "welcome", "welcome", self.welcome_points, change.state, change.buckets, now, common
            )
        )
        return Decision("enroll", change, {"source": "welcome"}, events)

    async def summary(self, msisdn: str, owner_since: datetime = EPOCH) -> dict[str, Any]:
        wallet = await self.ledger.wallet(msisdn)
        if wallet is None or not wallet.is_open_for(owner_since):
            raise not_a_member()
        now = self.clock()
        nxt = wallet.next_expiry()
        return {
            "msisdn": msisdn,
            "tier": wallet.tier,
            "points": wallet.points,
            "enrolled_at": wallet.enrolled_at,
            "expiring": {"points": nxt[1], "on": month_start(nxt[0])} if nxt else None,
            "expiry_schedule": [
                {"points": p, "on": month_start(m)} for m, p in sorted(wallet.buckets.items())
            ],
            "progress": tier_progress(wallet, now),
            "privileges": PRIVILEGES[wallet.tier],
        }

    async def history(
        self, msisdn: str, before: int | None, limit: int, owner_since: datetime = EPOCH
    ) -> dict[str, Any]:
        wallet = await self.ledger.wallet(msisdn)
        if wallet is None or not wallet.is_open_for(owner_since):
            raise not_a_member()
        query: dict[str, Any] = {"member": msisdn}
        if wallet.enrolled_at is not None:  # this membership's entries only
            query["at"] = {"$gte": wallet.enrolled_at}
        if before is not None:
            query["seq"] = {"$lt": before}
        rows = await self.store[LEDGER].find(query).sort("seq", -1).limit(limit + 1).to_list()
        page = rows[:limit]
        return {
            "items": [_history_row(r) for r in page],
            "next_before": page[-1]["seq"] if len(rows) > limit and page else None,
        }

    # -- earning (consumer) ---------------------------------------------------------------------

    async def earn_from(self, events: Sequence[AnyEvent]) -> list[Doc]:
        """Points for top-ups and paid bills of members (others earn nothing); each event once."""
        by_member: dict[str, list[tuple[str, Callable[[Wallet], Decision | None]]]] = {}
        for event in events:
            if isinstance(event, TopupRecorded):
                source, cause, paid = "topup", event.data.topup_id, event.data.recorded_at
            elif isinstance(event, BillPaid):
                source, cause, paid = "bill", event.data.bill_id, event.data.paid_at
            else:
                continue
            key = f"earn:{source}:{cause}"
            by_member.setdefault(event.subject, []).append(
                (key, self._earning(key, source, cause, event.data.amount_vnd, paid, event))
            )
        return await self.ledger.append_batch(by_member)

    def _earning(
        self, key: str, source: str, cause: str, amount: int, paid: datetime, event: AnyEvent
    ) -> Callable[[Wallet], Decision | None]:
        def decide(wallet: Wallet) -> Decision | None:
            if wallet.closed or (wallet.enrolled_at is not None and paid < wallet.enrolled_at):
                return None  # paid before joining, or a membership that is over
            now = self.clock()
            points = self.earning.for_payment(wallet, amount, now)
            if points <= 0:
                return None
            change = earn(wallet, points, now, self.earning.valid_months)
            common = _common(wallet.msisdn, event.correlation_id, str(event.event_id))
            earned = self._earned_event(key, source, cause, points, change.state, change.buckets, now, common)
            return Decision(
                "earn", change, {"source": source, "cause_id": cause, "amount_vnd": amount}, [earned]
            )

        return decide

    def _earned_event(
        self,
        key: str,
        source: str,
        cause: str,
        points: int,
        after: Wallet,
        buckets: dict[str, int],
        now: datetime,
        common: dict[str, Any],
    ) -> PointsEarned:
        return PointsEarned.new(
            **common,
            event_id=event_id(key, "earned"),
            data=PointsEarnedData(
                entry_id=key,
                source=source,
                cause_id=cause,
                points=points,
                balance_after=after.points,
                expires_on=month_start(next(iter(buckets))),
                earned_at=now,
            ),
        )

    # -- transfers ------------------------------------------------------------------------------

    async def transfer(
        self,
        sender: str,
        recipient: str,
        points: int,
        idempotency_key: str,
        correlation_id: str,
        owner_since: datetime = EPOCH,
    ) -> dict[str, Any]:
        transfer_id = derived_id("trf", sender, idempotency_key)
        key = f"transfer:{transfer_id}:out"
        if recipient == sender:
            raise Refused("transfer_to_self", "points cannot be sent to yourself")
        if not await self.ledger.is_member(recipient):
            raise Refused("recipient_not_member", "the recipient is not a member of Kết Nối Dài Lâu")
        now = self.clock()

        def decide(wallet: Wallet) -> Decision:
            if not wallet.is_open_for(owner_since):
                raise NotMember(sender)
            self.transfers.check(wallet, points, now)
            change = send(wallet, points, now)
            detail = {"transfer_id": transfer_id, "to": recipient, "points": points}
            counterpart = {
                "member": recipient,
                "key": f"transfer:{transfer_id}:in",
                "taken": change.buckets,
                "from": sender,
                "transfer_id": transfer_id,
                "correlation_id": correlation_id,
            }
            return Decision("transfer_out", change, detail, (), counterpart)

        try:
            doc, _ = await self.ledger.append(sender, key, decide)
        except NotMember as exc:
            raise not_a_member() from exc
        detail = doc["detail"]
        if (detail["to"], detail["points"]) != (recipient, points):
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was used for another transfer"
            )
        if doc.get("counterpart_pending"):
            await self.complete_transfer(doc)
        return {
            "transfer_id": transfer_id,
            "to": recipient,
            "points": points,
            "balance_after": doc["balance_after"],
            "status": "completed",
            "at": doc["at"],
        }

    async def complete_transfer(self, out: Doc) -> None:
        """Credit the recipient of a debited transfer (once: its own key), announce it, then
        mark the transfer done. A crash anywhere here leaves the mark for the recovery pass,
        which does the same again: the credit replays, the event goes out again (same id)."""
        c = out["counterpart"]
        now = self.clock()

        def decide(wallet: Wallet) -> Decision:
            change = put_back(wallet, c["taken"])  # the points keep the expiry dates they had
            event = PointsTransferred.new(
                **_common(c["member"], c.get("correlation_id") or c["key"], None),
                event_id=event_id(c["key"], "transferred"),
                data=PointsTransferredData(
                    transfer_id=c["transfer_id"],
                    from_msisdn=c["from"],
                    to_msisdn=c["member"],
                    points=change.delta,
                    recipient_balance_after=change.state.points,
                    transferred_at=now,
                ),
            )
            detail = {"transfer_id": c["transfer_id"], "from": c["from"], "points": change.delta}
            return Decision("transfer_in", change, detail, [event])

        received, _ = await self.ledger.append(c["member"], c["key"], decide, relay=False)
        await self.ledger.publish_entries([received])
        await self.store[LEDGER].update_one({"_id": out["_id"]}, {"$set": {"counterpart_pending": False}})
        out["counterpart_pending"] = False


def _common(subject: str, correlation_id: str, causation_id: str | None) -> dict[str, Any]:
    return {
        "subject": subject,
        "producer": PRODUCER,
        "correlation_id": correlation_id or "loyalty",
        "causation_id": causation_id,
    }


_LABELS = {
    "earn": "Points earned",
    "transfer_out": "Points sent",
    "transfer_in": "Points received",
    "redeem": "Points redeemed",
    "reverse": "Redemption refused: points returned",
    "expire": "Points expired",
    "tier": "Tier changed",
    "enroll": "Joined Kết Nối Dài Lâu",
    "close": "Membership closed",
}


def _history_row(doc: Doc) -> dict[str, Any]:
    return {
        "entry_id": doc["_id"],
        "seq": doc["seq"],
        "kind": doc["kind"],
        "label": _LABELS.get(doc["kind"], doc["kind"]),
        "points": doc["delta"],
        "balance_after": doc["balance_after"],
        "detail": doc.get("detail", {}),
        "at": doc["at"],
    }
