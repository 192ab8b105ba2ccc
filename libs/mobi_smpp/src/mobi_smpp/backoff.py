"""Reconnect delays: exponential, capped, with jitter."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("need 0 < initial <= maximum and factor >= 1")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * self._factor**self._attempt)
        self._attempt += 1
        # Jitter in [ceiling/2, ceiling]: every pod of a service reconnecting after an SMSC
        # restart must not arrive in lockstep, yet the delay never collapses towards zero.
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0
