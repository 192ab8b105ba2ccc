"""What the push sandbox remembers: deliveries per token (and per notification a phone would
show), tokens to answer as unregistered, and the faults to inject. In memory: a restart
forgets everything, as a fresh provider test project would."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Faults:
    rate_limited: int = 0  # the next N sends answer 429 with Retry-After
    server_errors: int = 0  # the next N sends answer 503
    delay_ms: int = 0  # every send waits this long before it answers
    retry_after_s: int = 1
    # The provider's quota (FCM: 600,000/min = 10,000/s per project). 0: none.
    max_per_second: int = 0


@dataclass
class SandboxState:
    deliveries: Counter[str] = field(default_factory=Counter)  # token -> accepted sends
    # (token, collapse id) -> accepted sends: a phone shows one notification per collapse id
    # (APNs apns-collapse-id, FCM android tag), so a re-send replaces rather than adds.
    shown: Counter[tuple[str, str]] = field(default_factory=Counter)
    unregistered: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    issued_tokens: set[str] = field(default_factory=set)
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (provider, status)
    http_versions: Counter[str] = field(default_factory=Counter)  # "2", "1.1": what clients speak
    _window: int = 0
    _window_count: int = 0

    def reset(self) -> None:
        self.deliveries.clear()
        self.shown.clear()
        self.unregistered.clear()
        self.faults = Faults()
        self.responses.clear()
        self.http_versions.clear()

    def over_quota(self) -> bool:
        limit = self.faults.max_per_second
        if not limit:
            return False
        now = int(time.monotonic())
        if now != self._window:
            self._window, self._window_count = now, 0
        self._window_count += 1
        return self._window_count > limit

    async def fault(self) -> int | None:
        """The status an injected fault answers with (None: deliver normally), after any delay."""
        if self.faults.delay_ms:
            await asyncio.sleep(self.faults.delay_ms / 1000)
        if self.faults.rate_limited > 0:
            self.faults.rate_limited -= 1
            return 429
        if self.over_quota():
            return 429
        if self.faults.server_errors > 0:
            self.faults.server_errors -= 1
            return 503
        return None

    def deliver(self, token: str, collapse_id: str | None) -> None:
        self.deliveries[token] += 1
        self.shown[(token, collapse_id or "")] += 1
