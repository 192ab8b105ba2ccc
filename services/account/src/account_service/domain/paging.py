"""Opaque cursors for history lists: newest first, stable under inserts."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import orjson


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    at: datetime
    id: str

    def encode(self) -> str:
        raw = orjson.dumps({"at": self.at.isoformat(), "id": self.id})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = orjson.loads(raw)
            return cls(at=datetime.fromisoformat(data["at"]), id=str(data["id"]))
        except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadCursor("cursor is not one this API returned") from exc


def older_than(cursor: Cursor | None) -> dict[str, object]:
    """Filter for the items after `cursor` in (at desc, _id desc) order."""
    if cursor is None:
        return {}
    return {"$or": [{"at": {"$lt": cursor.at}}, {"at": cursor.at, "_id": {"$lt": cursor.id}}]}


NEWEST_FIRST = [("at", -1), ("_id", -1)]
