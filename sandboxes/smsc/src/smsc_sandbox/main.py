"""`smsc-sandbox`: run the SMSC sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from .app import SmscSandbox
from .logs import configure_logging
from .settings import SmscSettings

log = logging.getLogger("smsc_sandbox")


async def serve(settings: SmscSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with SmscSandbox(settings):
        await stop.wait()
        log.info("shutdown signal received")


def run() -> None:
    settings = SmscSettings()
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    run()
