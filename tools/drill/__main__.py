"""`make drill`: the fault drill against the running local platform (`make up`).

    python -m tools.drill [--short] [--only NAME,...] [--hold 30] [--targets account]
                          [--pace 0.5] [--members 3] [--json FILE]

Prints one line per fault (its time to recover, the operations sent, events lost, effects
doubled, the ledger check) and exits 1 when any fault lost or doubled anything, left a
balance wrong, left an operation unanswered, failed the ledger check or never recovered.
`--short` is the test command's version (tests/platform/test_drill.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from servicekit.logs import configure_logging

from . import faults
from .platform import Platform
from .runner import Drill, Pacing, Result, toxiproxy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="a service kill, the broker restart, one cut")
    parser.add_argument("--only", help="run only these faults (names as printed, comma-separated)")
    parser.add_argument("--hold", type=float, help="seconds a network fault lasts (30; --short 10)")
    parser.add_argument(
        "--targets", default="account", help="services put behind the proxy (comma-separated)"
    )
    parser.add_argument("--pace", type=float, default=0.5, help="seconds between operations")
    parser.add_argument("--members", type=int, default=3, help="subscribers per fault")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    # The broker's listener for the proxy: every restart of Kafka the drill does keeps it.
    os.environ.setdefault("KAFKA_PROXIED_PORT", "9094")
    configure_logging("drill", "WARNING")
    # The charging system's producer retries through a broker restart on its own: its
    # connection errors are the fault itself, not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    results = asyncio.run(drill(args))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2))
    failed = [r.fault for r in results if not r.passed]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    sys.exit(1 if failed or not results else 0)


async def drill(args: argparse.Namespace) -> list[Result]:
    platform = Platform.local()
    pacing = Pacing(pace=args.pace, members=args.members)
    hold = args.hold or (10.0 if args.short else 30.0)
    async with toxiproxy(platform) as proxy:
        if args.short:
            pacing.settle_timeout = 120.0
            chosen = faults.short(platform, proxy, hold)
        else:
            chosen = faults.full(platform, proxy, args.targets.split(","), hold)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            chosen = [f for f in chosen if f.name in wanted]
        return await Drill(platform, proxy, pacing).run(chosen)


if __name__ == "__main__":
    main()
