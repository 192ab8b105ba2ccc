"""Who a promotion is for, decided from what notify knows of a subscriber (no I/O).

Devices are spread over `BUCKETS` buckets by their subscriber's number, so a campaign is
worked one bucket at a time (one indexed read of its devices and of each attribute the
audience needs) and a subscriber's devices share a bucket with their attributes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from mobi_contracts.events.notify import Audience

BUCKETS = 256


def bucket_of(msisdn: str) -> int:
    return int.from_bytes(hashlib.blake2b(msisdn.encode(), digest_size=4).digest(), "big") % BUCKETS


def unit_of_bucket(bucket: int) -> str:
    return f"b{bucket:03d}"


@dataclass(frozen=True)
class Attributes:
    """What the projections say of one subscriber; unknown is None / empty."""

    billing: str | None = None
    tier: str | None = None
    vas: frozenset[str] = field(default_factory=frozenset)


def needs(audience: Audience) -> set[str]:
    """The attribute projections an audience reads ("billing", "tier", "vas")."""
    wanted = set()
    if audience.billing:
        wanted.add("billing")
    if audience.tiers:
        wanted.add("tier")
    if audience.has_vas or audience.lacks_vas:
        wanted.add("vas")
    return wanted


def matches(
    audience: Audience, msisdn: str, attrs: Attributes, numbers: AbstractSet[str] | None = None
) -> bool:
    """Every criterion holds (a list: any of its items). A subscriber whose attribute is
    unknown is not in an audience that asks for it, except `lacks_vas` (nothing known
    active means lacking it). `numbers`: the explicit list as a set, made once per campaign
    (a list of 10,000 searched for each of 10,000 devices is 10^8 comparisons)."""
    if audience.everyone:
        return True
    if audience.msisdns and msisdn not in (numbers if numbers is not None else audience.msisdns):
        return False
    if audience.prefixes and not any(msisdn.startswith(p) for p in audience.prefixes):
        return False
    if audience.billing and attrs.billing != audience.billing:
        return False
    if audience.tiers and attrs.tier not in audience.tiers:
        return False
    if audience.has_vas and audience.has_vas not in attrs.vas:
        return False
    return not (audience.lacks_vas and audience.lacks_vas in attrs.vas)


def units_for(audience: Audience) -> list[str]:
    """The buckets a campaign must visit: all, or only those of an explicit number list."""
    if audience.msisdns:
        return sorted({unit_of_bucket(bucket_of(m)) for m in audience.msisdns})
    return [unit_of_bucket(b) for b in range(BUCKETS)]
