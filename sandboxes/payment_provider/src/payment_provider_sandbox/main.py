"""Entry point: `payment-provider-sandbox` (settings from PAYPROV_* environment variables)."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .logs import configure_logging
from .settings import Settings


def run() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler on the root logger
        access_log=False,
    )


if __name__ == "__main__":
    run()
