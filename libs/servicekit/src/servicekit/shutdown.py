"""Graceful shutdown: what a service does between SIGTERM and its exit.

uvicorn alone closes its listener at the signal, so a load balancer's or a person's GET /ready
meets a refused connection rather than a 503, and the consumers are stopped only after the
last request has finished. Here the first SIGTERM (or SIGINT) starts draining instead:

1. at once: GET /ready answers 503 (`draining`), `service_ready` is 0, and every consumer is
   told to stop: it finishes the batch in hand, commits it and leaves its group (a batch that
   waits out an outage is given back, uncommitted, instead of waiting on);
2. requests are still served for `shutdown_delay_seconds` (in a cluster the pod's preStop
   sleep has already had its endpoints removed; this covers a caller that polls readiness);
3. then uvicorn's own shutdown: the listener closes and in-flight requests finish (at most
   `shutdown_http_seconds`), and the app's lifespan ends: the consumers' stop is awaited,
   background tasks are cancelled, the outboxes are flushed and the shutdown hooks run (at
   most `shutdown_flush_seconds`), then Kafka, Redis and the store are closed.

The process then exits with status 0. A second signal skips the delay; a second SIGINT during
uvicorn's shutdown exits at once (its force exit). The budget of the whole is
`KitSettings.shutdown_budget_seconds()`, which the chart's grace period covers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining for `delay` seconds after the first signal (see module)."""

    def __init__(self, config: uvicorn.Config, *, on_signal: Callable[[], Any], delay: float) -> None:
        super().__init__(config)
        self.on_signal = on_signal
        self.delay = delay
        self.signalled_at: float | None = None
        self._drain_started = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: only note the time; the event loop acts on it in on_tick.
        if self.signalled_at is None and not self.should_exit:
            # Not kept for uvicorn to raise again once it has shut down: the process ends
            # normally (exit 0) after a drain, so the log thread writes its last lines.
            self.signalled_at = time.monotonic()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.signalled_at is not None:
            if not self._drain_started:
                self._drain_started = True
                log.info("signal received: draining", extra={"delay_s": self.delay})
                self.on_signal()
            if time.monotonic() - self.signalled_at >= self.delay:
                self.should_exit = True
        return await super().on_tick(counter)


async def within(seconds: float, work: Any, what: str) -> None:
    """Await `work` for at most `seconds` (a shutdown stage must not outlast its budget)."""
    try:
        await asyncio.wait_for(work, timeout=max(0.0, seconds))
    except TimeoutError:
        log.warning("shutdown stage cut short", extra={"stage": what, "after_s": seconds})
    except Exception:
        log.exception("shutdown stage failed", extra={"stage": what})
