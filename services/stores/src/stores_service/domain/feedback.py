"""Subscriber feedback: sanitising free text, ticket numbers, status changes."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from typing import Literal

FeedbackStatus = Literal["received", "in_progress", "answered", "closed"]
TICKET_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U to misread
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t]+")
# Characters that change how text is displayed without being text: bidirectional overrides
# (make a message read differently than it is stored), zero-width and other format marks.
_INVISIBLE = {"\u200b", "\u200e", "\u200f", "\u2060", "\ufeff", *map(chr, range(0x202A, 0x202F)),
              *map(chr, range(0x2066, 0x206A))}  # fmt: skip


def sanitise(text: str, *, multiline: bool = True) -> str:
    """Plain text fit to store and show: NFC, no control or invisible formatting characters,
    runs of spaces and of blank lines collapsed, trimmed. (Not HTML-escaped: it is stored and
    served as text; whoever renders it as HTML escapes it there.)"""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for c in text:
        if c == "\n":
            kept.append("\n" if multiline else " ")
        elif c == "\t":
            kept.append(" ")
        elif c in _INVISIBLE or unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn"):
            continue
        else:
            kept.append(c)
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(kept).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _code(raw: bytes, length: int = 8) -> str:
    number = int.from_bytes(raw, "big")
    return "".join(TICKET_ALPHABET[(number >> (5 * i)) & 31] for i in range(length))


def new_ticket() -> str:
    return f"GY-{_code(secrets.token_bytes(5))}"


def ticket_for_key(msisdn: str, key: str) -> str:
    """A retried request with the same Idempotency-Key names the same ticket."""
    return f"GY-{_code(hashlib.sha256(f'{msisdn}:{key}'.encode()).digest()[:5])}"


# received -> in_progress -> answered -> closed; any open ticket may be closed or answered;
# an answered ticket may be reopened (in_progress) when the subscriber's issue persists.
TRANSITIONS: dict[str, set[str]] = {
    "received": {"received", "in_progress", "answered", "closed"},
    "in_progress": {"in_progress", "answered", "closed"},
    "answered": {"answered", "in_progress", "closed"},
    "closed": set(),
}


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, set())
