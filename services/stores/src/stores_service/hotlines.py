"""The operator's hotlines: read from a JSON file at start (configuration, not code)."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .domain.hours import WeekHours, is_open, parse_week, today


class Hotline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    purpose: Literal["customer_care", "complaints", "loyalty", "roaming", "other"]
    name: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    number: str = Field(pattern=r"^\+?[0-9]{3,15}$")
    free: bool
    cost_note: str = Field(default="", max_length=100)
    hours: dict[str, tuple[str, ...]]

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        parse_week(value)
        return value

    @property
    def week(self) -> WeekHours:
        return parse_week(self.hours)

    def view(self, now: datetime) -> dict[str, Any]:
        week = self.week
        always = all(day == ((0, 1440),) for day in week)
        return {
            **self.model_dump(),
            "tel": f"tel:{self.number}",
            "always_open": always,
            "open_now": is_open(week, now),
            "hours_today": today(week, now),
        }


class HotlineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", alias="_comment")
    hotlines: list[Hotline] = Field(min_length=1)


def load_hotlines(path: Path | None = None) -> list[Hotline]:
    """The file at `path`, else the package's hotlines.json; an invalid file stops the start."""
    raw = path.read_bytes() if path else resources.files(__package__).joinpath("hotlines.json").read_bytes()
    return HotlineFile.model_validate(orjson.loads(raw)).hotlines
