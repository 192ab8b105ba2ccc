"""Demo data (`loyalty-seed`, run by `make up`): partner offers with E-code pools, and two
demo subscribers enrolled with some points. Deterministic and idempotent."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from servicekit.kafka.publisher import EventPublisher
from servicekit.logs import configure_logging
from servicekit.mongo import Store

from .domain.wallet import Wallet, earn, to_document
from .ledger import Decision, PointsLedger
from .settings import LoyaltySettings
from .store import ECODES, INDEXES, OFFERS, WALLETS

OFFERS_DEMO = [
    ("HIGHLANDS-20", "Highlands Coffee", "restaurant", "Giảm 20% đồ uống", "member"),
    ("PIZZA4PS-15", "Pizza 4P's", "restaurant", "Giảm 15% hóa đơn", "silver"),
    ("CGV-2D", "CGV Cinemas", "entertainment", "Vé 2D đồng giá 60.000đ", "member"),
    ("VIETJET-100K", "Vietjet Air", "travel", "Giảm 100.000đ vé máy bay nội địa", "gold"),
    ("FAHASA-10", "Fahasa", "shopping", "Giảm 10% sách", "member"),
]
CODES_PER_OFFER = 200
DEMO_MEMBERS = {"84901234567": 1_200, "84931234567": 12_500}


async def seed(settings: LoyaltySettings) -> dict[str, int]:
    store = Store(settings.mongodb_url, settings.database_name, app_name="loyalty-seed")
    await store.connect()
    try:
        await store.ensure_indexes(INDEXES)
        now = datetime.now(UTC)
        rng = random.Random(84_2026)
        codes = 0
        for offer_id, partner, category, title, tier in OFFERS_DEMO:
            offer: dict[str, Any] = {
                "partner": partner,
                "category": category,
                "title": title,
                "description": f"{title} tại {partner} cho hội viên Kết Nối Dài Lâu",
                "min_tier": tier,
                "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
                "valid_to": datetime(now.year + 1, 12, 31, tzinfo=UTC),
                "pool_size": CODES_PER_OFFER,
            }
            await store[OFFERS].update_one({"_id": offer_id}, {"$setOnInsert": offer}, upsert=True)
            pool = [f"{offer_id[:4]}{rng.randrange(16**8):08X}" for _ in range(CODES_PER_OFFER)]
            codes += await store.insert_new(
                ECODES,
                [
                    {
                        "_id": c,
                        "offer": offer_id,
                        "member": None,
                        "valid_from": offer["valid_from"],
                        "valid_to": offer["valid_to"],
                    }
                    for c in pool
                ],
            )
        # Members enrolled with points earned over the last months (no events: demo history).
        ledger = PointsLedger(store, EventPublisher(settings.kafka_access, "loyalty-seed"), "loyalty-seed")
        members = 0
        for msisdn, points in DEMO_MEMBERS.items():
            since = now - timedelta(days=3 * 365)
            members += await store.claim(
                WALLETS, msisdn, **to_document(Wallet(msisdn=msisdn, enrolled_at=now)), since=since
            )
            for month in range(3):
                at = now - timedelta(days=30 * month)

                def decide(w: Wallet, at: datetime = at, points: int = points) -> Decision:
                    return Decision(
                        "earn",
                        earn(w, points // 3, at, settings.points_valid_months),
                        {"source": "topup", "cause_id": "demo"},
                    )

                await ledger.append(msisdn, f"earn:seed:{msisdn}:{month}", decide, relay=False)
        return {"codes": codes, "members": members}
    finally:
        await store.close()


def run() -> None:
    settings = LoyaltySettings()
    configure_logging("loyalty-seed", settings.log_level)
    seeded = asyncio.run(seed(settings))
    print(f"loyalty seeded: {seeded['codes']} new E-codes, {seeded['members']} new demo members")


if __name__ == "__main__":
    run()
