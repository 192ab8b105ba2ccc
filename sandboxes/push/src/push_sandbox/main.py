"""Entry point `push-sandbox`: the providers' endpoints on PUSH_SANDBOX_PORT (default 8193),
HTTP/2 over cleartext (prior knowledge, as the notify adapters speak it locally) and HTTP/1.1."""

from __future__ import annotations

import asyncio
import os

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import PushSandbox


def run() -> None:
    config = Config()
    config.bind = [
        f"{os.environ.get('PUSH_SANDBOX_HOST', '127.0.0.1')}:{os.environ.get('PUSH_SANDBOX_PORT', '8193')}"
    ]
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 75
    # A provider keeps many streams open per connection (APNs: up to 1,000).
    config.h2_max_concurrent_streams = 1000
    asyncio.run(serve(PushSandbox(), config))  # type: ignore[arg-type]


if __name__ == "__main__":
    run()
