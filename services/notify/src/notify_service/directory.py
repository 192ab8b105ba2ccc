"""Devices, preferences and audience attributes as stored (reads by bucket for a fan-out,
by subscriber for the inbox and transactional pushes).

A device and the preferences are stamped with the tenancy of the token that registered or
saved them (`owner_since`, servicekit.tenancy): a number's new owner never sees, and is never
pushed to, a phone its previous owner registered (see `of_current_tenancy`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from servicekit.mongo import Doc, Store
from servicekit.tenancy import EPOCH, of_tenancy

from .domain.audience import Attributes, bucket_of
from .store import BILLING, DEVICES, PREFERENCES, TENANCIES, TIERS, VAS


def device_id_for(platform: str, token: str) -> str:
    """A device is its provider token: the same token registered again (by anyone) is the
    same device, so a token belongs to one subscriber at a time (the last to register it)."""
    return hashlib.sha256(f"{platform}:{token}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Preferences:
    marketing_opt_out: bool = False
    quiet_start: int | None = None  # minutes after local midnight (Vietnam time)
    quiet_end: int | None = None
    language: str | None = None  # vi | en; None: the device's locale

    @classmethod
    def from_doc(cls, doc: Doc | None) -> Preferences:
        if not doc:
            return cls()
        return cls(
            marketing_opt_out=bool(doc.get("marketing_opt_out")),
            quiet_start=doc.get("quiet_start"),
            quiet_end=doc.get("quiet_end"),
            language=doc.get("language"),
        )


def stamp_of(doc: Doc) -> datetime | None:
    """The tenancy a device or preferences document was made in; None for one made before
    stamps were kept (then when it was made tells)."""
    stamp = doc.get("owner_since")
    # EPOCH: saved under a token from before tenancies were kept, which tells nothing.
    return stamp if isinstance(stamp, datetime) and stamp > EPOCH else None


def of_current_tenancy(doc: Doc, owner_since: datetime) -> bool:
    """Whether a device (or preferences) belongs to the tenancy that began at `owner_since`:
    stamped with it (or a later one), or, unstamped, registered since it began."""
    stamp = stamp_of(doc)
    if stamp is not None:
        return stamp >= owner_since
    return of_tenancy(doc.get("registered_at") or doc.get("updated_at"), owner_since)


def current_tenancy(devices: list[Doc], recorded: datetime = EPOCH) -> datetime:
    """The number's current tenancy as notify knows it: the latest of the boundary a lifecycle
    event recorded and the stamps of its devices (a device registered by the new owner
    tells before the event has arrived)."""
    stamps = [s for d in devices if (s := stamp_of(d)) is not None]
    return max([recorded, *stamps])


def current_only(devices: list[Doc], recorded: dict[str, datetime]) -> list[Doc]:
    """Of devices of many numbers (a fan-out unit), those of each number's current tenancy."""
    by_number: dict[str, list[Doc]] = {}
    for device in devices:
        by_number.setdefault(device["msisdn"], []).append(device)
    tenancy = {m: current_tenancy(ds, recorded.get(m, EPOCH)) for m, ds in by_number.items()}
    return [d for d in devices if of_current_tenancy(d, tenancy[d["msisdn"]])]


def language_of(prefs: Preferences, locale: str | None) -> str:
    if prefs.language in ("vi", "en"):
        return prefs.language
    return "en" if (locale or "").lower().startswith("en") else "vi"


class Directory:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- devices ------------------------------------------------------------------------------

    async def register(
        self,
        msisdn: str,
        platform: str,
        token: str,
        app_version: str | None,
        locale: str | None,
        now: datetime,
        owner_since: datetime = EPOCH,
    ) -> Doc:
        doc = {
            "_id": device_id_for(platform, token),
            "msisdn": msisdn,
            "bucket": bucket_of(msisdn),
            "platform": platform,
            "token": token,
            "app_version": app_version,
            "locale": locale,
            "registered_at": now,
            "owner_since": owner_since,  # the registering token's tenancy
        }
        await self.store[DEVICES].replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return doc

    async def devices_of(self, msisdn: str) -> list[Doc]:
        """Every device registered for the number, whatever the tenancy (see `current_devices`)."""
        return await self.store[DEVICES].find({"msisdn": msisdn}).to_list()

    async def current_devices(self, msisdn: str, owner_since: datetime) -> list[Doc]:
        """The number's devices registered in the tenancy that began at `owner_since`."""
        return [d for d in await self.devices_of(msisdn) if of_current_tenancy(d, owner_since)]

    async def tenancy_of(self, msisdn: str) -> datetime:
        """The boundary the last lifecycle event of the number recorded (EPOCH: none)."""
        doc = await self.store[TENANCIES].find_one({"_id": msisdn})
        found = doc.get("owner_since") if doc else None
        return found if isinstance(found, datetime) else EPOCH

    async def tenancies_in_bucket(self, bucket: int) -> dict[str, datetime]:
        docs = await self.store[TENANCIES].find({"bucket": bucket}).to_list()
        return {d["_id"]: d["owner_since"] for d in docs}

    async def tenancies_of(self, msisdns: list[str], per_read: int = 1_000) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for start in range(0, len(msisdns), per_read):
            part = msisdns[start : start + per_read]
            for doc in await self.store[TENANCIES].find({"_id": {"$in": part}}).to_list():
                found[doc["_id"]] = doc["owner_since"]
        return found

    async def remove(self, msisdn: str, device_id: str) -> bool:
        result = await self.store[DEVICES].delete_one({"_id": device_id, "msisdn": msisdn})
        return result.deleted_count == 1

    async def prune(self, device_ids: list[str], tokens: dict[str, str]) -> int:
        """Delete devices whose token the provider reported dead (only if still that token)."""
        results = await self.store.bounded_all(
            self.store[DEVICES].delete_one({"_id": d, "token": tokens[d]}) for d in device_ids
        )
        return sum(r.deleted_count for r in results)

    async def devices_in_bucket(self, bucket: int) -> list[Doc]:
        docs = await self.store[DEVICES].find({"bucket": bucket}).to_list()
        docs.sort(key=lambda d: d["_id"])
        return docs

    # -- preferences -----------------------------------------------------------------------------

    async def preferences(self, msisdn: str, owner_since: datetime = EPOCH) -> Preferences:
        """The subscriber's preferences, if saved in the tenancy that began at `owner_since`."""
        doc = await self.store[PREFERENCES].find_one({"_id": msisdn})
        return Preferences.from_doc(doc if doc and of_current_tenancy(doc, owner_since) else None)

    async def save_preferences(
        self, msisdn: str, prefs: Preferences, now: datetime, owner_since: datetime = EPOCH
    ) -> None:
        await self.store[PREFERENCES].replace_one(
            {"_id": msisdn},
            {
                "_id": msisdn,
                "bucket": bucket_of(msisdn),
                **vars(prefs),
                "updated_at": now,
                "owner_since": owner_since,
            },
            upsert=True,
        )

    async def preferences_of(self, msisdns: list[str], per_read: int = 1_000) -> dict[str, Preferences]:
        """Current preferences of many numbers, a bounded `$in` per read."""
        found: dict[str, Preferences] = {}
        for start in range(0, len(msisdns), per_read):
            part = msisdns[start : start + per_read]
            for doc in await self.store[PREFERENCES].find({"_id": {"$in": part}}).to_list():
                found[doc["_id"]] = Preferences.from_doc(doc)
        return found

    async def preferences_in_bucket(self, bucket: int) -> dict[str, Preferences]:
        docs = await self.store[PREFERENCES].find({"bucket": bucket}).to_list()
        return {d["_id"]: Preferences.from_doc(d) for d in docs}

    # -- audience attributes (projections) ----------------------------------------------------------

    async def attributes_in_bucket(self, bucket: int, wanted: set[str]) -> dict[str, Attributes]:
        billing: dict[str, Any] = {}
        tiers: dict[str, Any] = {}
        vas: dict[str, set[str]] = {}
        if "billing" in wanted:
            billing = {
                d["_id"]: d["billing"] for d in await self.store[BILLING].find({"bucket": bucket}).to_list()
            }
        if "tier" in wanted:
            tiers = {d["_id"]: d["tier"] for d in await self.store[TIERS].find({"bucket": bucket}).to_list()}
        if "vas" in wanted:
            for d in await self.store[VAS].find({"bucket": bucket}).to_list():
                vas.setdefault(d["msisdn"], set()).add(d["code"])
        return {
            m: Attributes(billing.get(m), tiers.get(m), frozenset(vas.get(m, ())))
            for m in set(billing) | set(tiers) | set(vas)
        }

    async def attributes_of(self, msisdn: str, wanted: set[str]) -> Attributes:
        billing = tier = None
        codes: frozenset[str] = frozenset()
        if "billing" in wanted:
            doc = await self.store[BILLING].find_one({"_id": msisdn})
            billing = doc["billing"] if doc else None
        if "tier" in wanted:
            doc = await self.store[TIERS].find_one({"_id": msisdn})
            tier = doc["tier"] if doc else None
        if "vas" in wanted:
            codes = frozenset(d["code"] for d in await self.store[VAS].find({"msisdn": msisdn}).to_list())
        return Attributes(billing, tier, codes)
