"""Partner offers with finite pools of E-codes, and physical member card requests.

A code goes to one member by a unique insert (`ecode_owners`, _id = the code), never by a
conditional update: on FerretDB 1.24, 50 concurrent `find_one_and_update({member: null})`
on 10 free codes handed out 50 (it rewrites documents without a lock). A member's claim on
an offer is itself a unique insert (`ecode_claims`, _id = offer:member), so a member gets one
code per offer however often the button is pressed; the claim carries the ECodeIssued event
(v2: the code itself never travels on the bus, the event names the claim).

"Member" is the membership (`Wallet.member_key`), not the number: a recycled number's new
owner claims codes and requests cards of their own, and sees none of the previous owner's
(views keep what was made in the caller's tenancy); a tenancy's end cancels the previous
owner's open card requests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from mobi_contracts import Topic
from mobi_contracts.events.loyalty import (
    ECodeIssuedV2,
    ECodeIssuedV2Data,
    MemberCardRequested,
    MemberCardRequestedData,
)
from mobi_contracts.topics import LOYALTY_EVENTS
from servicekit.errors import ApiError, unavailable
from servicekit.mongo import Doc, Store
from servicekit.outbox import OutboxRelay, outbox_entries, with_pending
from servicekit.tenancy import EPOCH, since_filter

from .domain.wallet import TIERS, Wallet, now_ms
from .ledger import PointsLedger
from .programme import PRODUCER, derived_id, event_id, not_a_member
from .store import CARD_REQUESTS, ECODE_CLAIMS, ECODE_OWNERS, ECODES, OFFERS

CANDIDATES = 20  # free codes looked at per round of a claim
OPEN_CARD = ("received", "printing", "shipped")  # a card request still on its way


def _public_offer(doc: Doc) -> dict[str, Any]:
    return {
        "offer_id": doc["_id"],
        "partner": doc["partner"],
        "category": doc["category"],
        "title": doc["title"],
        "description": doc.get("description", ""),
        "min_tier": doc.get("min_tier", "member"),
        "valid_from": doc["valid_from"],
        "valid_to": doc["valid_to"],
        "pool_size": doc.get("pool_size", 0),
    }


class Offers:
    def __init__(
        self,
        store: Store,
        ledger: PointsLedger,
        claims: OutboxRelay,
        cards: OutboxRelay,
        clock: Callable[[], datetime] = now_ms,
        topic: Topic = LOYALTY_EVENTS,
    ) -> None:
        self.topic = topic
        self.store = store
        self.ledger = ledger
        self.claims = claims
        self.cards = cards
        self.clock = clock

    async def list_offers(self, category: str | None) -> list[dict[str, Any]]:
        now = self.clock()
        query: dict[str, Any] = {"category": category} if category else {}
        docs = await self.store[OFFERS].find(query).sort("_id", 1).limit(200).to_list()
        return [_public_offer(d) for d in docs if d["valid_from"] <= now < d["valid_to"]]

    async def add_offer(self, offer: dict[str, Any], codes: list[str]) -> int:
        """An offer and its codes (operators' import; idempotent by offer id and code)."""
        await self.store[OFFERS].update_one(
            {"_id": offer["_id"]}, {"$set": {k: v for k, v in offer.items() if k != "_id"}}, upsert=True
        )
        fresh = await self.store.insert_new(
            ECODES,
            [
                {
                    "_id": c,
                    "offer": offer["_id"],
                    "member": None,
                    "valid_from": offer["valid_from"],
                    "valid_to": offer["valid_to"],
                }
                for c in codes
            ],
        )
        total = await self.store[ECODES].count_documents({"offer": offer["_id"]})
        await self.store[OFFERS].update_one({"_id": offer["_id"]}, {"$set": {"pool_size": total}})
        return fresh

    async def _membership(self, msisdn: str, owner_since: datetime) -> Wallet:
        """The caller's membership: one enrolled in the caller's tenancy, and not closed."""
        wallet = await self.ledger.wallet(msisdn)
        if wallet is None or not wallet.is_open_for(owner_since):
            raise not_a_member()
        return wallet

    async def claim_code(
        self, msisdn: str, offer_id: str, correlation_id: str, owner_since: datetime = EPOCH
    ) -> tuple[dict[str, Any], bool]:
        """(the member's code for the offer, True when handed out now)."""
        wallet = await self._membership(msisdn, owner_since)
        member = wallet.member_key
        offer = await self.store[OFFERS].find_one({"_id": offer_id})
        now = self.clock()
        if offer is None or not offer["valid_from"] <= now < offer["valid_to"]:
            raise ApiError(404, "not_found", "offer not found")
        claim_id = f"{offer_id}:{member}"
        claim = await self.store[ECODE_CLAIMS].find_one({"_id": claim_id})
        if claim is not None and claim.get("code"):
            return _public_code(claim), False
        if TIERS.index(wallet.tier) < TIERS.index(offer.get("min_tier", "member")):
            raise ApiError(403, "tier_too_low", f"this offer is for {offer['min_tier']} members and above")
        if claim is None and not await self.store.claim(
            ECODE_CLAIMS, claim_id, member=msisdn, offer=offer_id, code=None, at=now, rev=1
        ):
            raise ApiError(409, "request_in_progress", "this code is being handed out; retry")
        code = await self._owned(offer_id, member) or await self._take_free_code(offer_id, member, now)
        if code is None:
            code = await self._owned(offer_id, member)  # a second press of ours may have got one
        if code is None:
            await self.store[ECODE_CLAIMS].delete_one({"_id": claim_id, "code": None})
            raise ApiError(409, "sold_out", "every code of this offer has been handed out")
        event = ECodeIssuedV2.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or claim_id,
            event_id=event_id(claim_id, "ecode"),
            data=ECodeIssuedV2Data(
                offer_id=offer_id,
                partner=offer["partner"],
                ecode_id=claim_id,  # the code stays here; the member reads it in the app
                valid_from=code["valid_from"],
                valid_to=code["valid_to"],
                issued_at=now,
            ),
        )
        changes = {
            "code": code["_id"],
            "partner": offer["partner"],
            "title": offer["title"],
            "valid_from": code["valid_from"],
            "valid_to": code["valid_to"],
            "at": now,
        }
        entries = outbox_entries(self.topic, [event])
        # Upserted: a second press of the member that found no code may have removed the claim.
        await self.store[ECODE_CLAIMS].update_one(
            {"_id": claim_id},
            {
                "$set": with_pending({**changes, "member": msisdn, "offer": offer_id}, entries, now),
                "$setOnInsert": {"rev": 1},
            },
            upsert=True,
        )
        claim = await self.store[ECODE_CLAIMS].find_one({"_id": claim_id})
        if claim is None:  # cannot happen after the upsert; never answer without the code
            raise unavailable("the code could not be recorded; retry")
        await self.claims.relay(claim)
        return _public_code(claim), True

    async def _owned(self, offer_id: str, member: str) -> Doc | None:
        """A code already handed to this member (a crash came before the claim recorded it)."""
        owner = await self.store[ECODE_OWNERS].find_one({"offer": offer_id, "member": member})
        return await self.store[ECODES].find_one({"_id": owner["_id"]}) if owner else None

    async def _take_free_code(self, offer_id: str, member: str, now: datetime) -> Doc | None:
        while True:
            free = (
                await self.store[ECODES].find({"offer": offer_id, "member": None}).limit(CANDIDATES).to_list()
            )
            if not free:
                return None
            random.shuffle(free)  # concurrent claimers try different codes first
            for code in free:
                if await self.store.claim(ECODE_OWNERS, code["_id"], offer=offer_id, member=member, at=now):
                    await self.store[ECODES].update_one({"_id": code["_id"]}, {"$set": {"member": member}})
                    return code
                mine = await self._owned(offer_id, member)  # unique (offer, member): one each
                if mine is not None:
                    return mine
                # Taken by someone else: mark it so the next round does not look at it again
                # (a crash may have come between their insert and their mark).
                owner = await self.store[ECODE_OWNERS].find_one({"_id": code["_id"]})
                if owner:
                    await self.store[ECODES].update_one(
                        {"_id": code["_id"]}, {"$set": {"member": owner["member"]}}
                    )

    async def my_codes(self, msisdn: str, owner_since: datetime = EPOCH) -> list[dict[str, Any]]:
        query = {"member": msisdn, **since_filter("at", owner_since)}
        docs = await self.store[ECODE_CLAIMS].find(query).sort("at", -1).limit(200).to_list()
        return [_public_code(d) for d in docs if d.get("code")]

    # -- member cards -------------------------------------------------------------------------

    async def request_card(
        self,
        msisdn: str,
        address: dict[str, Any],
        idempotency_key: str,
        correlation_id: str,
        owner_since: datetime = EPOCH,
    ) -> tuple[dict[str, Any], bool]:
        wallet = await self._membership(msisdn, owner_since)
        request_id = derived_id("card", wallet.member_key, idempotency_key)
        existing = await self.store[CARD_REQUESTS].find_one({"_id": request_id})
        if existing is not None:
            if existing["address"] != address:
                raise ApiError(
                    422, "idempotency_key_reused", "this Idempotency-Key was used for another request"
                )
            return _public_card(existing), False
        # One open request at a time: a unique claim, freed when the request is delivered or cancelled.
        if not await self.store.claim(
            CARD_REQUESTS, f"open:{wallet.member_key}", member=None, request=request_id
        ):
            raise ApiError(409, "card_request_open", "a member card request is already in progress")
        now = self.clock()
        event = MemberCardRequested.new(
            subject=msisdn,
            producer=PRODUCER,
            correlation_id=correlation_id or request_id,
            event_id=event_id(request_id, "card"),
            data=MemberCardRequestedData(request_id=request_id, tier=wallet.tier, requested_at=now),
        )
        doc = with_pending(
            {
                "_id": request_id,
                "member": msisdn,
                "member_key": wallet.member_key,
                "tier": wallet.tier,
                "address": address,
                "status": "received",
                "at": now,
                "updated_at": now,
                "rev": 1,
            },
            outbox_entries(self.topic, [event]),
            now,
        )
        await self.store[CARD_REQUESTS].insert_one(doc)
        await self.cards.relay(doc)
        return _public_card(doc), True

    async def my_cards(self, msisdn: str, owner_since: datetime = EPOCH) -> list[dict[str, Any]]:
        query = {"member": msisdn, **since_filter("at", owner_since)}
        docs = await self.store[CARD_REQUESTS].find(query).sort("at", -1).limit(20).to_list()
        return [_public_card(d) for d in docs]

    async def cancel_cards_before(self, msisdn: str, boundary: datetime) -> int:
        """A tenancy ended: the previous owner's card requests still on their way are cancelled
        (not sent to an address the next owner never gave) and free the open-request slot."""
        docs = await self.store[CARD_REQUESTS].find({"member": msisdn}).to_list()
        ending = [d for d in docs if d["status"] in OPEN_CARD and d["at"] < boundary]
        for doc in ending:
            await self.set_card_status(doc["_id"], "cancelled")
        return len(ending)

    async def set_card_status(self, request_id: str, status: str) -> dict[str, Any]:
        """The card bureau's progress (operators)."""
        doc = await self.store[CARD_REQUESTS].find_one({"_id": request_id})
        if doc is None or doc.get("member") is None:
            raise ApiError(404, "not_found", "card request not found")
        now = self.clock()
        await self.store[CARD_REQUESTS].update_one(
            {"_id": request_id}, {"$set": {"status": status, "updated_at": now}}
        )
        if status in ("delivered", "cancelled"):
            owner = doc.get("member_key") or doc["member"]
            await self.store[CARD_REQUESTS].delete_one({"_id": f"open:{owner}", "request": request_id})
        return _public_card({**doc, "status": status, "updated_at": now})


def _public_code(doc: Doc) -> dict[str, Any]:
    return {
        "offer_id": doc["offer"],
        "partner": doc.get("partner"),
        "title": doc.get("title"),
        "code": doc["code"],
        "valid_from": doc.get("valid_from"),
        "valid_to": doc.get("valid_to"),
        "issued_at": doc["at"],
    }


def _public_card(doc: Doc) -> dict[str, Any]:
    return {
        "request_id": doc["_id"],
        "tier": doc["tier"],
        "address": doc["address"],
        "status": doc["status"],
        "requested_at": doc["at"],
        "updated_at": doc.get("updated_at", doc["at"]),
    }
