"""Demo scratch cards (`payment-seed`, run by `make up`): deterministic, idempotent."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from servicekit.logs import configure_logging
from servicekit.mongo import Store

from .domain.rules import pin_digest
from .settings import PaymentSettings
from .store import INDEXES, SCRATCH_CARDS

FACE_VALUES = [10_000, 20_000, 50_000, 100_000, 200_000, 500_000]
DEMO_CARDS = 1000


def demo_cards(count: int = DEMO_CARDS) -> list[dict[str, object]]:
    """The same cards every time: serial 1000000000+i, a 13-digit PIN from a fixed seed."""
    rng = random.Random(84_2026)
    return [
        {
            "serial": f"{1_000_000_000 + i}",
            "pin": f"{rng.randrange(10**12, 10**13)}",
            "face_value_vnd": FACE_VALUES[i % 6],
        }
        for i in range(count)
    ]


async def seed(settings: PaymentSettings) -> int:
    store = Store(settings.mongodb_url, settings.database_name, app_name="payment-seed")
    await store.connect()
    try:
        await store.ensure_indexes(INDEXES)
        pepper = settings.scratch_pin_pepper.get_secret_value().encode()
        expires = datetime(datetime.now(UTC).year + 2, 12, 31, tzinfo=UTC)
        docs = [
            {
                "_id": c["serial"],
                "pin_digest": pin_digest(pepper, str(c["serial"]), str(c["pin"])),
                "face_value_vnd": c["face_value_vnd"],
                "expires_at": expires,
                "status": "active",
                "batch": "demo",
            }
            for c in demo_cards()
        ]
        return await store.insert_new(SCRATCH_CARDS, docs)
    finally:
        await store.close()


def run() -> None:
    settings = PaymentSettings()
    configure_logging("payment-seed", settings.log_level)
    inserted = asyncio.run(seed(settings))
    print(
        f"scratch cards seeded: {inserted} new ({DEMO_CARDS} demo cards); "
        f"e.g. serial 1000000000 PIN {demo_cards(1)[0]['pin']}"
    )


if __name__ == "__main__":
    run()
