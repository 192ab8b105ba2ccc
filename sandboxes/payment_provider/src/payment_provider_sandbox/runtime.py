"""The sandbox's parts, wired once per app and handed to the routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from .checkout import Checkout
from .metrics import Metrics
from .notifier import Notifier
from .settings import Settings
from .store import Store
from .switches import SwitchBoard


@dataclass
class Sandbox:
    settings: Settings
    store: Store
    switches: SwitchBoard
    notifier: Notifier
    checkout: Checkout
    metrics: Metrics
    clock: Callable[[], datetime]

    def reset(self) -> None:
        self.notifier.cancel_all()
        self.store.clear()
        self.switches.clear()


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]
