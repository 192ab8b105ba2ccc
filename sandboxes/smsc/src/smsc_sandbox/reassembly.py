"""Concatenated messages: parts wait here until the last one arrives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mobi_smpp import Concatenation

# Same ESME bind, same addresses, same reference, same part count and coding: one message.
PartsKey = tuple[str, str, str, int, int, int]


@dataclass(frozen=True, slots=True)
class Part:
    payload: bytes  # text octets, UDH removed
    message_id: str


@dataclass(frozen=True, slots=True)
class Assembled:
    payload: bytes
    message_ids: list[str]


@dataclass(slots=True)
class _Partial:
    total: int
    first_seen: float
    parts: dict[int, Part] = field(default_factory=dict)


class Reassembler:
    def __init__(self, ttl_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._partials: dict[PartsKey, _Partial] = {}

    def add(self, key: PartsKey, concatenation: Concatenation, part: Part) -> Assembled | None:
        """Store one part; return the whole message once every part is in."""
        self._forget_stale()
        partial = self._partials.setdefault(key, _Partial(concatenation.total, self._clock()))
        # A resent part (the ESME timed out and retried) replaces the earlier copy.
        partial.parts[concatenation.sequence] = part
        if len(partial.parts) < partial.total:
            return None
        del self._partials[key]
        ordered = [partial.parts[number] for number in range(1, partial.total + 1)]
        return Assembled(b"".join(p.payload for p in ordered), [p.message_id for p in ordered])

    @property
    def pending(self) -> int:
        return len(self._partials)

    def _forget_stale(self) -> None:
        # A message whose other parts never come must not hold memory forever.
        deadline = self._clock() - self._ttl
        for key in [k for k, p in self._partials.items() if p.first_seen < deadline]:
            del self._partials[key]
