"""`vas-renewals [--now ISO] [--msisdn 84...]`: one renewal pass by hand (under the same lease as
the service's own passes)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from servicekit.logs import configure_logging

from .main import create_service


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--now", type=datetime.fromisoformat, default=None)
    parser.add_argument("--msisdn", default=None)
    args = parser.parse_args()
    service = create_service()

    async def once() -> None:
        configure_logging("vas-renewals", service.settings.log_level)
        await service.store.connect()
        await service.publisher.start()
        try:
            job = service.app.state.renewal_job
            renewals = service.app.state.renewals
            stats = await job.run_once(lambda: renewals.run_once(args.now, args.msisdn))
            print("another replica holds the lease; try again" if stats is None else stats)
        finally:
            await service.publisher.stop()
            await service.broker.stop()
            await service.redis.aclose()
            await service.store.close()

    asyncio.run(once())


if __name__ == "__main__":
    run()
