"""Demo data: a few thousand subscribers with balances, usage, top-ups and bills.

Deterministic (same numbers every run) and idempotent: documents have fixed ids, inserts
skip existing ones, and a marker written last makes a complete second run a no-op.
`account-seed` (run by `make up`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher

from servicekit.buckets import hour_of
from servicekit.logs import configure_logging
from servicekit.mongo import Store

from .settings import AccountSettings
from .store import BALANCES, BILLS, CHARGES, INDEXES, JOURNAL, META, PORTAL_ACCOUNTS, SUBSCRIBERS, TOPUPS

log = logging.getLogger(__name__)
MARKER = "demo-seed-v1"
DEMO_PASSWORD = "mobifone-demo-1"

# Well-known numbers for the README's examples and the end-to-end tests.
DEMO_SUBSCRIBERS = [
    ("84901234567", "Nguyễn Văn An", "prepaid", 125_000),
    ("84931234567", "Trần Thị Bình", "postpaid", 0),
    ("84702345678", "Lê Hoàng Cường", "prepaid", 5_000),
    ("84762345678", "Phạm Thu Dung", "prepaid", 300_000),
]
FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Thanh", "Ngọc", "Đức", "Quang", "Thu", "Gia", "Bảo"]
GIVEN = [
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Hà",
    "Hải",
    "Hạnh",
    "Hiếu",
    "Hoa",
    "Hùng",
    "Hương",
    "Khánh",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Minh",
    "Nam",
    "Nga",
    "Ngọc",
    "Phong",
    "Phương",
    "Quân",
    "Quỳnh",
    "Sơn",
    "Tâm",
    "Thảo",
    "Thắng",
    "Trang",
    "Trung",
    "Tuấn",
    "Vy",
    "Yến",
]
MOBIFONE_PREFIXES = ["90", "93", "89", "70", "76", "77", "78", "79"]
DATA_PACKS = [
    ("MAX90", 30 * 1024 * 1024),
    ("C120", 60 * 1024 * 1024),
    ("D15", 1536 * 1024),
    ("HD70", 6 * 1024 * 1024),
]


def generate(count: int, now: datetime) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(20261125)
    numbers = {m: (name, plan, main) for m, name, plan, main in DEMO_SUBSCRIBERS}
    while len(numbers) < count:
        msisdn = "84" + rng.choice(MOBIFONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        if msisdn not in numbers:
            name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
            plan = "postpaid" if rng.random() < 0.2 else "prepaid"
            main = 0 if plan == "postpaid" else rng.randrange(0, 500) * 1000
            numbers[msisdn] = (name, plan, main)
    out: dict[str, list[dict[str, Any]]] = {
        k: [] for k in (SUBSCRIBERS, BALANCES, JOURNAL, CHARGES, TOPUPS, BILLS)
    }
    for msisdn, (name, plan, main) in numbers.items():
        since = datetime(2008, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(6500))
        out[SUBSCRIBERS].append(
            {"_id": msisdn, "name": name, "plan": plan, "status": "active", "since": since}
        )
        out[BALANCES].append(_balances(rng, msisdn, plan, main, now))
        out[JOURNAL].append(_opening(out[BALANCES][-1], now))
        out[CHARGES].extend(_charges(rng, msisdn, now))
        if plan == "prepaid":
            out[TOPUPS].extend(_topups(rng, msisdn, now))
        else:
            out[BILLS].extend(_bills(rng, msisdn, now))
    return out


def _balances(rng: random.Random, msisdn: str, plan: str, main: int, now: datetime) -> dict[str, Any]:
    promos, data = [], []
    if plan == "prepaid" and rng.random() < 0.5:
        promos.append(
            {
                "id": "KM1",
                "name": "Tài khoản khuyến mại 1",
                "balance": rng.randrange(10, 100) * 1000,
                "expires_at": now + timedelta(days=rng.randrange(5, 30)),
            }
        )
    if rng.random() < 0.6:
        pack, total = rng.choice(DATA_PACKS)
        data.append(
            {
                "id": pack,
                "name": f"Gói {pack}",
                "remaining_kb": rng.randrange(total // 10, total),
                "total_kb": total,
                "expires_at": now + timedelta(days=rng.randrange(1, 30)),
            }
        )
    return {
        "_id": msisdn,
        "plan": plan,
        "main": main,
        "unbilled": rng.randrange(0, 300) * 1000 if plan == "postpaid" else 0,
        "promos": promos,
        "data": data,
        "seq": 1,  # the opening decision (see _opening)
        "rev": 1,
        "updated_at": now,
    }


def _opening(balances: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The journal's first decision: the balances the subscriber had when the platform started
    (migrated from the old system), so that every balance is the sum of its journal entries."""
    msisdn = balances["_id"]
    key = f"opening:{msisdn}"
    accounts = [
        ("main", "vnd", balances["main"]),
        ("unbilled", "vnd", balances["unbilled"]),
        *((f"promo:{p['id']}", "vnd", p["balance"]) for p in balances["promos"]),
        *((f"data:{d['id']}", "kb", d["remaining_kb"]) for d in balances["data"]),
    ]
    state = {k: balances[k] for k in ("plan", "main", "unbilled", "promos", "data", "seq")}
    return {
        "_id": key,
        "msisdn": msisdn,
        "seq": 1,
        "at": now,
        "hour": hour_of(now),
        "kind": "opening",
        "cause_event_id": None,
        "cause_event_type": "Migration",
        "entries": [
            {
                "entry_id": f"{key}:{account}",
                "account": account,
                "unit": unit,
                "delta": amount,
                "balance_after": amount,
                "reason": "opening",
                "description": "Opening balance",
            }
            for account, unit, amount in accounts
            if amount
        ],
        "refused": None,
        "state_after": state,
        "events": [],
        "views": {},
    }


def _charges(rng: random.Random, msisdn: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(8):
        kind = rng.choice(["voice", "voice", "sms", "data"])
        at = now - timedelta(minutes=rng.randrange(60, 30 * 24 * 60))
        if kind == "voice":
            seconds = rng.randrange(10, 900)
            row = {
                "quantity": seconds,
                "unit": "seconds",
                "amount_vnd": (seconds + 5) // 6 * 118,
                "data_kb": 0,
                "counterpart": "09xxxxx" + f"{rng.randrange(1000):03d}",
            }
        elif kind == "sms":
            row = {"quantity": 1, "unit": "messages", "amount_vnd": 290, "data_kb": 0, "counterpart": None}
        else:
            kb = rng.randrange(100, 200_000)
            row = {"quantity": kb, "unit": "kilobytes", "amount_vnd": 0, "data_kb": kb, "counterpart": None}
        rows.append(
            {
                "_id": f"seed-{msisdn}-{i}",
                "msisdn": msisdn,
                "kind": kind,
                "description": f"{kind} {row['quantity']} {row['unit']}",
                "at": at,
                **row,
            }
        )
    return rows


def _topups(rng: random.Random, msisdn: str, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "_id": f"seed-topup-{msisdn}-{i}",
            "msisdn": msisdn,
            "amount_vnd": rng.choice([10, 20, 50, 100, 200, 500]) * 1000,
            "method": rng.choice(["scratch_card", "card_domestic", "card_international"]),
            "payer_msisdn": msisdn,
            "payment_id": None,
            "balance_after": None,
            "at": now - timedelta(days=rng.randrange(1, 90)),
        }
        for i in range(3)
    ]


def _bills(rng: random.Random, msisdn: str, now: datetime) -> list[dict[str, Any]]:
    bills = []
    for months_ago in (1, 2, 3):
        first = (now.replace(day=1) - timedelta(days=28 * months_ago)).replace(day=1)
        amount = rng.randrange(80, 600) * 1000
        bills.append(
            {
                "_id": f"B{first:%Y%m}-{msisdn}",
                "msisdn": msisdn,
                "period": f"{first:%Y-%m}",
                "amount_vnd": amount,
                "due_date": first + timedelta(days=45),
                "status": "unpaid" if months_ago == 1 else "paid",
                "items": [
                    {"label": "Cước thuê bao", "amount_vnd": 49_000},
                    {"label": "Cước sử dụng", "amount_vnd": amount - 49_000},
                ],
            }
        )
    return bills


async def seed(settings: AccountSettings) -> bool:
    store = Store(settings.mongodb_url, settings.database_name, app_name="account-seed")
    await store.connect()
    try:
        if await store[META].find_one({"_id": MARKER}):
            log.info("demo data already present")
            return False
        await store.ensure_indexes(INDEXES)
        now = datetime.now(UTC).replace(microsecond=0)
        for collection, docs in generate(settings.demo_subscribers, now).items():
            for start in range(0, len(docs), 2000):
                await store.insert_new(collection, docs[start : start + 2000])
        hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
        portal = [{"_id": m, "password_hash": hasher.hash(DEMO_PASSWORD)} for m, *_ in DEMO_SUBSCRIBERS]
        await store.insert_new(PORTAL_ACCOUNTS, portal)
        await store[META].insert_one({"_id": MARKER, "at": now, "subscribers": settings.demo_subscribers})
        log.info("demo data seeded", extra={"subscribers": settings.demo_subscribers})
        return True
    finally:
        await store.close()


def run() -> None:
    settings = AccountSettings()
    configure_logging("account-seed", settings.log_level)
    asyncio.run(seed(settings))
