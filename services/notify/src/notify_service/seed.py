"""Demo devices (`notify-seed`, run by `make up`): deterministic and idempotent.

The demo subscribers 84901234567, 84931234567 and 84702345678 get an Android and an iOS
device each (tokens derived from the number), Vietnamese by default; 84931234567 is
postpaid in the audience projection (as a PlanChanged would say)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

from servicekit.logs import configure_logging
from servicekit.mongo import Store

from .directory import device_id_for
from .domain.audience import bucket_of
from .settings import NotifySettings
from .store import BILLING, DEVICES, INDEXES

DEMO = {"84901234567": "prepaid", "84931234567": "postpaid", "84702345678": "prepaid"}


def demo_devices() -> list[dict[str, object]]:
    now = datetime.now(UTC)
    docs: list[dict[str, object]] = []
    for msisdn in DEMO:
        digest = hashlib.sha256(f"demo:{msisdn}".encode()).hexdigest()
        for platform, token in (("fcm", f"demo-fcm-{digest[:40]}"), ("apns", digest)):
            docs.append(
                {
                    "_id": device_id_for(platform, token),
                    "msisdn": msisdn,
                    "bucket": bucket_of(msisdn),
                    "platform": platform,
                    "token": token,
                    "app_version": "5.2.0",
                    "locale": "vi-VN",
                    "registered_at": now,
                }
            )
    return docs


async def seed(settings: NotifySettings) -> int:
    store = Store(settings.mongodb_url, settings.database_name, app_name="notify-seed")
    await store.connect()
    try:
        await store.ensure_indexes(INDEXES)
        billing = [{"_id": m, "billing": b, "bucket": bucket_of(m)} for m, b in DEMO.items()]
        await store.insert_new(BILLING, billing)
        return await store.insert_new(DEVICES, demo_devices())
    finally:
        await store.close()


def run() -> None:
    settings = NotifySettings()
    configure_logging("notify-seed", settings.log_level)
    print(f"demo devices seeded: {asyncio.run(seed(settings))} new")


if __name__ == "__main__":
    run()
