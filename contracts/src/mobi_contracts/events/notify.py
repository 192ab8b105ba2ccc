"""Campaign promotions (topic `promotions.v1`), published by campaign teams and read by notify.

A `PromotionPublished` is about no one subscriber: it is a `BroadcastEnvelope` with no
subject, keyed by `promotion_id`. Its audience is a rule, not a list of millions: notify
resolves it against what it knows of each subscriber (billing, loyalty tier, active VAS,
number) when it fans the promotion out and when a subscriber opens the promotions inbox.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from ..broadcast import BroadcastEnvelope
from ..envelope import EventData
from ..msisdn import Msisdn

PROMOTION_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
EXPLICIT_LIST_MAX = 10_000  # a longer list belongs in a rule (or several promotions)
_PREFIX = re.compile(r"^84\d{1,8}$")


class LocalizedText(EventData):
    """The same text in Vietnamese and English (the app shows the subscriber's language)."""

    vi: str = Field(min_length=1, max_length=1000)
    en: str = Field(min_length=1, max_length=1000)


class Audience(EventData):
    """Who the promotion is for. Criteria combine with AND; a list matches any of its items.
    `everyone` stands alone; an audience with neither is refused (it names nobody)."""

    everyone: bool = False
    billing: Literal["prepaid", "postpaid"] | None = None
    tiers: list[str] = Field(default_factory=list, max_length=10, description="loyalty tiers, any of")
    has_vas: str | None = Field(default=None, min_length=1, max_length=64, description="subscribed to")
    lacks_vas: str | None = Field(default=None, min_length=1, max_length=64, description="not subscribed to")
    prefixes: list[str] = Field(
        default_factory=list, max_length=100, description="number prefixes (region, range), any of"
    )
    msisdns: list[Msisdn] = Field(default_factory=list, max_length=EXPLICIT_LIST_MAX)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _canonical_prefixes(cls, value: object) -> object:
        """`090`, `+8490` and `8490` are one prefix: `8490`."""
        if not isinstance(value, list):
            return value
        out = []
        for raw in value:
            text = str(raw).strip().removeprefix("+")
            text = "84" + text[1:] if text.startswith("0") else text
            if not _PREFIX.match(text):
                raise ValueError(f"prefix {raw!r} is not the start of a number (e.g. 090 or 8490)")
            out.append(text)
        return out

    @model_validator(mode="after")
    def _names_someone(self) -> Audience:
        criteria = bool(
            self.billing or self.tiers or self.has_vas or self.lacks_vas or self.prefixes or self.msisdns
        )
        if self.everyone and criteria:
            raise ValueError("audience: 'everyone' cannot be combined with other criteria")
        if not self.everyone and not criteria:
            raise ValueError("audience names nobody: set everyone=true or at least one criterion")
        return self


class PromotionPublishedData(EventData):
    promotion_id: str = Field(pattern=PROMOTION_ID, description="unique; a re-publish is ignored")
    campaign: str | None = Field(default=None, max_length=100)
    title: LocalizedText
    body: LocalizedText
    deep_link: str = Field(pattern=r"^(mymobifone://|https://)\S{1,500}$")
    image_url: str | None = Field(default=None, pattern=r"^https://\S{1,500}$")
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    send_at: AwareDatetime | None = Field(default=None, description="push at this time (default: now)")
    priority: Literal["normal", "high"] = "normal"
    audience: Audience

    @model_validator(mode="after")
    def _coherent(self) -> PromotionPublishedData:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.send_at is not None and self.send_at >= self.valid_until:
            raise ValueError("send_at must be before valid_until")
        for lang in ("vi", "en"):
            if len(getattr(self.title, lang)) > 120:
                raise ValueError(f"title.{lang} is longer than 120 characters")
        return self


class PromotionPublished(BroadcastEnvelope[PromotionPublishedData]):
    EVENT_TYPE = "PromotionPublished"
    EVENT_VERSION = 1
    KEY_FIELD = "promotion_id"
