"""The demo catalogue (`stores-seed`, run by `make up`): deterministic and idempotent.

About 3 000 stores generated from a table of provinces and their districts with real centre
coordinates (approximate to a few hundred metres), weighted by population: MobiFone stores
(full service, shop hours) and agents (top-ups and bill payments, longer hours; a few open
all night or round the clock). The same table gives the same catalogue every time; seeding
does nothing when a catalogue is active already (an operator's import is never replaced).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
from typing import get_args

from servicekit.logs import configure_logging
from servicekit.mongo import Store
from servicekit.redis_client import create_redis

from .catalogue import Catalogue
from .domain.catalogue import StoreRow, StoreServiceCode
from .domain.hours import WEEKDAYS
from .settings import StoresSettings
from .store import INDEXES

# province, code, area code, weight (share of stores), spread km, [(district, lat, lon)]
# fmt: off
PROVINCES: list[tuple[str, str, str, int, float, list[tuple[str, float, float]]]] = [
    ("Hà Nội", "HNI", "24", 150, 2.5, [
        ("Hoàn Kiếm", 21.0288, 105.8525), ("Ba Đình", 21.0341, 105.8140), ("Đống Đa", 21.0181, 105.8292),
        ("Hai Bà Trưng", 21.0059, 105.8573), ("Cầu Giấy", 21.0362, 105.7906),
        ("Thanh Xuân", 20.9935, 105.8110), ("Hoàng Mai", 20.9746, 105.8630),
        ("Long Biên", 21.0472, 105.8887), ("Tây Hồ", 21.0700, 105.8190), ("Nam Từ Liêm", 21.0170, 105.7620),
        ("Bắc Từ Liêm", 21.0700, 105.7600), ("Hà Đông", 20.9710, 105.7780), ("Gia Lâm", 21.0200, 105.9400),
        ("Đông Anh", 21.1400, 105.8500), ("Sóc Sơn", 21.2600, 105.8500), ("Thanh Trì", 20.9400, 105.8500),
        ("Sơn Tây", 21.1380, 105.5050),
    ]),
    ("TP. Hồ Chí Minh", "HCM", "28", 190, 2.5, [
        ("Quận 1", 10.7756, 106.7019), ("Quận 3", 10.7843, 106.6844), ("Quận 5", 10.7540, 106.6634),
        ("Quận 7", 10.7340, 106.7218), ("Quận 10", 10.7730, 106.6676), ("Tân Bình", 10.8015, 106.6520),
        ("Bình Thạnh", 10.8106, 106.7091), ("Phú Nhuận", 10.7992, 106.6803), ("Gò Vấp", 10.8387, 106.6653),
        ("Thủ Đức", 10.8494, 106.7537), ("Tân Phú", 10.7900, 106.6280), ("Bình Tân", 10.7650, 106.6030),
        ("Quận 8", 10.7240, 106.6286), ("Quận 12", 10.8672, 106.6413), ("Bình Chánh", 10.6870, 106.5930),
        ("Hóc Môn", 10.8860, 106.5920), ("Nhà Bè", 10.6950, 106.7400), ("Củ Chi", 10.9733, 106.4933),
    ]),
    ("Đà Nẵng", "DNG", "236", 45, 2.5, [
        ("Hải Châu", 16.0600, 108.2200), ("Thanh Khê", 16.0640, 108.1880), ("Sơn Trà", 16.0860, 108.2420),
        ("Ngũ Hành Sơn", 16.0010, 108.2600), ("Liên Chiểu", 16.0750, 108.1500),
        ("Cẩm Lệ", 16.0150, 108.2000), ("Hòa Vang", 16.0300, 108.1000),
    ]),
    ("Hải Phòng", "HPG", "225", 45, 3.0, [
        ("Hồng Bàng", 20.8610, 106.6760), ("Lê Chân", 20.8450, 106.6810), ("Ngô Quyền", 20.8570, 106.7000),
        ("Hải An", 20.8380, 106.7320), ("Kiến An", 20.8080, 106.6330), ("Đồ Sơn", 20.7130, 106.7810),
        ("Thủy Nguyên", 20.9300, 106.6700), ("An Dương", 20.8700, 106.6100),
    ]),
    ("Cần Thơ", "CTO", "292", 35, 3.0, [
        ("Ninh Kiều", 10.0340, 105.7680), ("Bình Thủy", 10.0700, 105.7450), ("Cái Răng", 10.0000, 105.7600),
        ("Ô Môn", 10.1100, 105.6300), ("Thốt Nốt", 10.2700, 105.5300),
    ]),
    ("Quảng Ninh", "QNH", "203", 30, 4.0, [
        ("Hạ Long", 20.9517, 107.0800), ("Cẩm Phả", 21.0100, 107.2900), ("Uông Bí", 21.0360, 106.7700),
        ("Móng Cái", 21.5240, 107.9660), ("Đông Triều", 21.0840, 106.5200),
    ]),
    ("Thanh Hóa", "THA", "237", 45, 5.0, [
        ("TP. Thanh Hóa", 19.8070, 105.7760), ("Sầm Sơn", 19.7400, 105.9000),
        ("Bỉm Sơn", 20.0800, 105.8600), ("Thọ Xuân", 19.9300, 105.4300), ("Tĩnh Gia", 19.4500, 105.7500),
    ]),
    ("Nghệ An", "NAN", "238", 45, 5.0, [
        ("TP. Vinh", 18.6790, 105.6810), ("Cửa Lò", 18.8100, 105.7200), ("Diễn Châu", 18.9900, 105.6000),
        ("Đô Lương", 18.9000, 105.3100), ("Thái Hòa", 19.3200, 105.4400),
    ]),
    ("Hà Tĩnh", "HTH", "239", 18, 5.0, [
        ("TP. Hà Tĩnh", 18.3430, 105.9050), ("Hồng Lĩnh", 18.5300, 105.7100), ("Kỳ Anh", 18.0700, 106.3000),
    ]),
    ("Quảng Bình", "QBH", "232", 14, 5.0, [
        ("Đồng Hới", 17.4680, 106.6220), ("Ba Đồn", 17.7550, 106.4230),
    ]),
    ("Thừa Thiên Huế", "TTH", "234", 28, 4.0, [
        ("TP. Huế", 16.4637, 107.5909), ("Hương Thủy", 16.4000, 107.6300), ("Hương Trà", 16.4800, 107.5100),
    ]),
    ("Quảng Nam", "QNM", "235", 25, 5.0, [
        ("Tam Kỳ", 15.5730, 108.4740), ("Hội An", 15.8800, 108.3350), ("Điện Bàn", 15.8900, 108.2500),
    ]),
    ("Bình Định", "BDH", "256", 25, 5.0, [
        ("Quy Nhơn", 13.7760, 109.2240), ("An Nhơn", 13.8900, 109.1000),
    ]),
    ("Khánh Hòa", "KHA", "258", 28, 4.0, [
        ("Nha Trang", 12.2388, 109.1967), ("Cam Ranh", 11.9200, 109.1600), ("Ninh Hòa", 12.4900, 109.1300),
    ]),
    ("Lâm Đồng", "LDG", "263", 22, 4.0, [
        ("Đà Lạt", 11.9404, 108.4583), ("Bảo Lộc", 11.5480, 107.8070),
    ]),
    ("Đắk Lắk", "DLK", "262", 25, 5.0, [
        ("Buôn Ma Thuột", 12.6670, 108.0380), ("Buôn Hồ", 12.9200, 108.2700),
    ]),
    ("Gia Lai", "GLI", "269", 18, 5.0, [
        ("Pleiku", 13.9833, 108.0000), ("An Khê", 13.9600, 108.6600),
    ]),
    ("Bình Dương", "BDG", "274", 50, 3.5, [
        ("Thủ Dầu Một", 10.9800, 106.6500), ("Dĩ An", 10.9070, 106.7690), ("Thuận An", 10.9300, 106.7100),
        ("Bến Cát", 11.1500, 106.6000), ("Tân Uyên", 11.0600, 106.7900),
    ]),
    ("Đồng Nai", "DNI", "251", 50, 4.0, [
        ("Biên Hòa", 10.9450, 106.8240), ("Long Khánh", 10.9300, 107.2400),
        ("Long Thành", 10.7800, 106.9500), ("Nhơn Trạch", 10.7200, 106.8900),
        ("Trảng Bom", 10.9500, 107.0000),
    ]),
    ("Bà Rịa - Vũng Tàu", "BRV", "254", 25, 4.0, [
        ("Vũng Tàu", 10.3460, 107.0840), ("Bà Rịa", 10.4960, 107.1680), ("Phú Mỹ", 10.5900, 107.0500),
    ]),
    ("Long An", "LAN", "272", 20, 5.0, [
        ("Tân An", 10.5350, 106.4130), ("Bến Lức", 10.6400, 106.4900),
    ]),
    ("Tiền Giang", "TGG", "273", 20, 5.0, [
        ("Mỹ Tho", 10.3600, 106.3600), ("Gò Công", 10.3600, 106.6700),
    ]),
    ("An Giang", "AGG", "296", 25, 5.0, [
        ("Long Xuyên", 10.3860, 105.4350), ("Châu Đốc", 10.7000, 105.1160), ("Tân Châu", 10.8000, 105.2400),
    ]),
    ("Kiên Giang", "KGG", "297", 20, 5.0, [
        ("Rạch Giá", 10.0125, 105.0809), ("Hà Tiên", 10.3830, 104.4880), ("Phú Quốc", 10.2270, 103.9670),
    ]),
    ("Sóc Trăng", "STG", "299", 14, 5.0, [
        ("TP. Sóc Trăng", 9.6030, 105.9800),
    ]),
    ("Cà Mau", "CMU", "290", 14, 5.0, [
        ("TP. Cà Mau", 9.1768, 105.1524),
    ]),
    ("Thái Nguyên", "TNN", "208", 18, 4.0, [
        ("TP. Thái Nguyên", 21.5942, 105.8482), ("Sông Công", 21.4800, 105.8400),
    ]),
    ("Bắc Ninh", "BNH", "222", 25, 3.5, [
        ("TP. Bắc Ninh", 21.1861, 106.0763), ("Từ Sơn", 21.1200, 105.9600),
    ]),
    ("Hải Dương", "HDG", "220", 20, 4.0, [
        ("TP. Hải Dương", 20.9373, 106.3146), ("Chí Linh", 21.1300, 106.3900),
    ]),
    ("Nam Định", "NDH", "228", 18, 4.0, [
        ("TP. Nam Định", 20.4200, 106.1680),
    ]),
    ("Vĩnh Phúc", "VPC", "211", 15, 4.0, [
        ("Vĩnh Yên", 21.3100, 105.5960), ("Phúc Yên", 21.2400, 105.7000),
    ]),
    ("Lào Cai", "LCI", "214", 10, 4.0, [
        ("TP. Lào Cai", 22.4856, 103.9707), ("Sa Pa", 22.3360, 103.8440),
    ]),
    ("Sơn La", "SLA", "212", 10, 5.0, [
        ("TP. Sơn La", 21.3256, 103.9188), ("Mộc Châu", 20.8500, 104.6300),
    ]),
    ("Phú Yên", "PYN", "257", 12, 5.0, [
        ("Tuy Hòa", 13.0955, 109.3209),
    ]),
    ("Bình Thuận", "BTN", "252", 15, 5.0, [
        ("Phan Thiết", 10.9280, 108.1020), ("La Gi", 10.6600, 107.7700),
    ]),
]
# fmt: on

STREETS = [
    "Lê Lợi",
    "Trần Hưng Đạo",
    "Nguyễn Huệ",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Quang Trung",
    "Nguyễn Trãi",
    "Lê Duẩn",
    "Điện Biên Phủ",
    "Phan Chu Trinh",
    "Hùng Vương",
    "Nguyễn Văn Cừ",
    "Trần Phú",
    "Lê Lai",
    "Nguyễn Du",
    "Bà Triệu",
    "Cách Mạng Tháng Tám",
    "Võ Văn Tần",
    "Hoàng Văn Thụ",
    "Nguyễn Thị Minh Khai",
    "Phạm Văn Đồng",
    "Lê Thánh Tông",
    "Nguyễn Đình Chiểu",
    "Trường Chinh",
    "Lạc Long Quân",
    "Âu Cơ",
]
OWNERS = [
    "Minh Anh",
    "Thành Đạt",
    "Hoàng Long",
    "Thu Hà",
    "Phương Nam",
    "Bảo Ngọc",
    "Quốc Huy",
    "Ngọc Lan",
    "Đức Thịnh",
    "Hải Yến",
    "Tuấn Kiệt",
    "Mai Linh",
    "Gia Bảo",
    "Thanh Tâm",
    "Văn Hùng",
    "Kim Oanh",
]
TOTAL = 3000
FULL_SERVICE: tuple[str, ...] = get_args(StoreServiceCode)  # a MobiFone store offers every service


def _every_day(*intervals: str) -> dict[str, tuple[str, ...]]:
    return {day: intervals for day in WEEKDAYS}


STORE_HOURS = [
    {**{d: ("08:00-21:00",) for d in WEEKDAYS[:6]}, "sun": ("08:00-17:00",)},
    {**{d: ("07:30-21:30",) for d in WEEKDAYS[:6]}, "sun": ("08:00-12:00",)},
    _every_day("08:00-21:30"),
]
AGENT_HOURS = [
    _every_day("07:00-22:00"),
    _every_day("06:30-11:30", "13:30-21:00"),
    {**{d: ("07:00-20:00",) for d in WEEKDAYS[:6]}},  # closed on Sunday
    _every_day("18:00-02:00"),  # a night kiosk: past midnight
    _every_day("00:00-24:00"),  # round the clock
]


def _point(rng: random.Random, lat: float, lon: float, spread_km: float) -> tuple[float, float]:
    """A point around (lat, lon), denser near it (normal, sd = spread)."""
    dlat = rng.gauss(0, spread_km) / 111.2
    dlon = rng.gauss(0, spread_km) / (111.2 * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)


def demo_catalogue(total: int = TOTAL) -> list[StoreRow]:
    rng = random.Random(84_0106)
    weights = sum(p[3] for p in PROVINCES)
    rows: list[StoreRow] = []
    for province, code, area, weight, spread, districts in PROVINCES:
        count = max(len(districts), round(total * weight / weights))
        for n in range(count):
            district, dlat, dlon = districts[n % len(districts)]
            lat, lon = _point(rng, dlat, dlon, spread)
            is_store = n % 5 == 0
            street = rng.choice(STREETS)
            number = rng.randint(1, 480)
            services: tuple[str, ...]
            if is_store:
                name = f"Cửa hàng MobiFone {district} {n // 5 + 1}"
                services = FULL_SERVICE
                hours = rng.choice(STORE_HOURS)
                phone = f"0{area} {rng.randint(3000, 3999)} {rng.randint(1000, 9999)}"
            else:
                name = f"Đại lý MobiFone {rng.choice(OWNERS)}"
                extra = [s for s in ("sim_swap", "new_subscription", "phone_sales") if rng.random() < 0.3]
                services = ("topup", "bill_payment", *extra)
                # One agent in 23 is a night kiosk or open round the clock.
                hours = AGENT_HOURS[3 + (n // 23) % 2] if n % 23 == 0 else rng.choice(AGENT_HOURS[:3])
                phone = f"09{rng.choice('0367')} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            row = {
                "id": f"{code}-{n + 1:04d}",
                "name": name,
                "type": "mobifone_store" if is_store else "agent",
                "address": f"{number} {street}, {district}, {province}",
                "district": district,
                "province": province,
                "lat": lat,
                "lon": lon,
                "phone": phone,
                "services": services,
                "hours": hours,
            }
            rows.append(StoreRow.model_validate(row))
    return rows


async def seed(settings: StoresSettings) -> str:
    store = Store(settings.mongodb_url, settings.database_name, app_name="stores-seed")
    await store.connect()
    redis = create_redis(settings.redis_url)
    try:
        await store.ensure_indexes(INDEXES)
        catalogue = Catalogue(store, redis, service="stores-seed")
        active = await catalogue.pointer()
        if active is not None:
            return f"catalogue already active: {active['version']} ({active['stores']} stores); left as is"
        result = await catalogue.import_rows(demo_catalogue(), source="stores-seed")
        return f"catalogue seeded: version {result['version']} ({result['stores']} stores)"
    finally:
        await redis.aclose()
        await store.close()


def run() -> None:
    settings = StoresSettings()
    configure_logging("stores-seed", settings.log_level)
    if "--csv" in sys.argv:  # the demo catalogue as an import file, e.g. to edit and re-import
        from .domain.catalogue import to_csv

        sys.stdout.buffer.write(to_csv(demo_catalogue()))
        return
    print(asyncio.run(seed(settings)))


if __name__ == "__main__":
    run()
