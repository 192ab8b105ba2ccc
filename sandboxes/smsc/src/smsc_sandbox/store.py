"""Messages the sandbox accepted, for the HTTP API and an optional JSON-lines record file."""

from __future__ import annotations

import re
from collections import deque
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

_NOT_DIGITS = re.compile(r"\D")


class MessageRecord(BaseModel):
    id: str  # the SMSC message id of the first part
    message_ids: list[str]  # one per submit_sm, in part order
    source: str
    destination: str  # exactly as the ESME sent it
    text: str
    data_coding: int
    parts: int
    received_at: datetime  # when the last part arrived
    system_id: str  # of the bind that submitted it


def match_key(number: str) -> str:
    """One form for the ways a Vietnamese MSISDN is written: 0901.., +84901.., 84901.. -> 84901.."""
    digits = _NOT_DIGITS.sub("", number)
    return "84" + digits[1:] if digits.startswith("0") else digits


class MessageStore:
    def __init__(self, max_messages: int, record_file: Path | None = None) -> None:
        # Each record with its destination's match_key, computed once rather than on every query.
        self._messages: deque[tuple[str, MessageRecord]] = deque(maxlen=max_messages)
        self._record_file = record_file

    def add(self, record: MessageRecord) -> None:
        self._messages.append((match_key(record.destination), record))
        if self._record_file is not None:
            # A plain append per message: the sandbox handles a handful of messages a second,
            # and reopening keeps working when someone rotates or deletes the file.
            with self._record_file.open("a", encoding="utf-8") as out:
                out.write(record.model_dump_json() + "\n")

    def newest(self, to: str | None = None, limit: int = 20) -> list[MessageRecord]:
        key = match_key(to) if to else None
        found: list[MessageRecord] = []
        for record_key, record in reversed(self._messages):
            if key is None or record_key == key:
                found.append(record)
                if len(found) == limit:
                    break
        return found

    def clear(self) -> int:
        count = len(self._messages)
        self._messages.clear()
        return count

    def __len__(self) -> int:
        return len(self._messages)
