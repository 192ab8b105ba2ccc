"""Entry point `push-sandbox`: the providers' endpoints on PUSH_SANDBOX_PORT (default 8193),
HTTP/2 over cleartext (prior knowledge, as the notify adapters speak it locally) and HTTP/1.1.

Served by granian (a Rust HTTP/2 server): the pure-Python h2 stack of hypercorn answered
about 1,000 sends/s per core, so a million-device campaign measured the sandbox, not notify.
"""

from __future__ import annotations

import os

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP2Settings
from granian.server import Server

from .app import PushSandbox

app = PushSandbox()


def run() -> None:
    Server(
        "push_sandbox.main:app",
        address=os.environ.get("PUSH_SANDBOX_HOST", "127.0.0.1"),
        port=int(os.environ.get("PUSH_SANDBOX_PORT", "8193")),
        interface=Interfaces.ASGI,
        http=HTTPModes.auto,  # HTTP/1.1, and HTTP/2 on the prior-knowledge preface
        # A provider keeps many streams open per connection (APNs: up to 1,000).
        http2_settings=HTTP2Settings(max_concurrent_streams=1000),
        workers=1,  # the delivery counts live in this one process's memory
        log_access=False,
    ).serve()


if __name__ == "__main__":
    run()
