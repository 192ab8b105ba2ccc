"""The catalogue: value-added services, data/voice/roaming packs and tariff plans.

Prices are whole đồng. A VAS renews every `period_days`; a pack is valid `validity_days` and
renews when auto-renew is on. Item codes are unique across services and packs (the code is
what a subscriber sends by SMS, and what the app's cancel button names).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Period = Literal["daily", "weekly", "monthly"]
PERIOD_DAYS: dict[str, int] = {"daily": 1, "weekly": 7, "monthly": 30}
Billing = Literal["prepaid", "postpaid"]
CODE_PATTERN = r"^[A-Z0-9_]{2,16}$"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN)
    name_vi: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    price_vnd: int = Field(ge=0, le=10_000_000, multiple_of=100)
    description: str = Field(default="", max_length=500)


class Vas(Item):
    item_kind: Literal["vas"] = "vas"
    category: Literal["ringback", "music", "tv", "news", "horoscope", "games", "cloud", "other"]
    provider: str = Field(pattern=r"^[a-z0-9-]{2,32}$", description="content provider")
    period: Period
    cancel_sms: str = Field(min_length=1, max_length=100, description="how to cancel by SMS")

    @property
    def period_days(self) -> int:
        return PERIOD_DAYS[self.period]

    def grants(self) -> list[dict[str, object]]:
        return []


class Pack(Item):
    item_kind: Literal["pack"] = "pack"
    pack_kind: Literal["data", "voice", "roaming"]
    validity_days: int = Field(gt=0, le=366)
    quota_kb: int | None = Field(default=None, gt=0, le=1_000_000_000, description="data quota")
    voice_minutes: int | None = Field(default=None, gt=0, le=100_000)
    sms_count: int | None = Field(default=None, gt=0, le=100_000)
    auto_renew: bool = Field(description="renews by default when bought")
    eligible: tuple[Billing, ...] = Field(min_length=1, description="who may buy it")

    @model_validator(mode="after")
    def _has_a_quota(self) -> Pack:
        if self.quota_kb is None and self.voice_minutes is None and self.sms_count is None:
            raise ValueError("a pack gives data (quota_kb), minutes (voice_minutes) or SMS (sms_count)")
        return self

    def grants(self) -> list[dict[str, object]]:
        """What one period gives, in the units usage is counted in (kilobytes, seconds, messages)."""
        specs: list[dict[str, object]] = []
        if self.quota_kb:
            specs.append({"kind": "data", "quantity": self.quota_kb})
        if self.voice_minutes:
            specs.append({"kind": "voice", "quantity": self.voice_minutes * 60})
        if self.sms_count:
            specs.append({"kind": "sms", "quantity": self.sms_count})
        return specs

    @property
    def period_days(self) -> int:
        return self.validity_days

    @property
    def provider(self) -> str:
        return "mobifone"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    billing: Billing
    monthly_fee_vnd: int = Field(ge=0, le=10_000_000)
    description: str = Field(default="", max_length=500)


AnyItem = Vas | Pack
GB = 1024 * 1024

DEMO_VAS: tuple[Vas, ...] = (
    Vas(code="FUNRING", category="ringback", provider="mobifone-funring", period="daily", price_vnd=300,
        name_vi="Nhạc chờ FunRing", name_en="FunRing ringback tones",
        description="Thay tiếng tút bằng bài hát bạn chọn.", cancel_sms="HUY gửi 9224"),
    Vas(code="NHACCHO", category="ringback", provider="vmusic", period="monthly", price_vnd=9000,
        name_vi="Nhạc chờ theo tháng", name_en="Monthly ringback tone",
        description="Kho nhạc chờ cập nhật hằng tuần.", cancel_sms="HUY NC gửi 9224"),
    Vas(code="MCLIP", category="music", provider="vmusic", period="daily", price_vnd=3000,
        name_vi="MClip nghe nhạc, xem video", name_en="MClip music and video",
        description="Nghe nhạc, xem clip không giới hạn, miễn cước data.", cancel_sms="HUY MC gửi 9070"),
    Vas(code="MOBITV", category="tv", provider="mobitv", period="weekly", price_vnd=10000,
        name_vi="MobiTV truyền hình di động", name_en="MobiTV mobile TV",
        description="Hơn 100 kênh truyền hình trên điện thoại.", cancel_sms="HUY TV gửi 999"),
    Vas(code="TINNONG", category="news", provider="vnews", period="daily", price_vnd=1000,
        name_vi="Tin nóng mỗi ngày", name_en="Daily breaking news",
        description="3 bản tin SMS mỗi ngày.", cancel_sms="HUY TN gửi 9241"),
    Vas(code="TUVI", category="horoscope", provider="tuvi-online", period="daily", price_vnd=2000,
        name_vi="Tử vi hằng ngày", name_en="Daily horoscope",
        description="Tử vi theo tuổi gửi qua SMS mỗi sáng.", cancel_sms="HUY TV1 gửi 9209"),
    Vas(code="GAMEVUI", category="games", provider="gamevui", period="weekly", price_vnd=5000,
        name_vi="Kho game GameVui", name_en="GameVui game store",
        description="Chơi game không giới hạn.", cancel_sms="HUY GV gửi 9046"),
    Vas(code="MCA", category="other", provider="mobifone", period="monthly", price_vnd=5000,
        name_vi="MCA báo cuộc gọi nhỡ", name_en="MCA missed-call alerts",
        description="Báo cuộc gọi nhỡ khi máy tắt hoặc ngoài vùng phủ sóng.", cancel_sms="HUY MCA gửi 9232"),
    Vas(code="MCLOUD", category="cloud", provider="mobifone-cloud", period="monthly", price_vnd=15000,
        name_vi="MobiCloud 50 GB", name_en="MobiCloud 50 GB storage",
        description="Sao lưu ảnh, danh bạ, 50 GB.", cancel_sms="HUY CLOUD gửi 9234"),
)  # fmt: skip

DEMO_PACKS: tuple[Pack, ...] = (
    Pack(code="D15", pack_kind="data", price_vnd=10000, validity_days=1, quota_kb=int(1.5 * GB),
         auto_renew=False, eligible=("prepaid", "postpaid"),
         name_vi="D15: 1,5 GB/ngày", name_en="D15: 1.5 GB for a day"),
    Pack(code="C90N", pack_kind="data", price_vnd=90000, validity_days=30, quota_kb=120 * GB,
         auto_renew=True, eligible=("prepaid", "postpaid"),
         name_vi="C90N: 4 GB/ngày, 30 ngày", name_en="C90N: 4 GB a day for 30 days"),
    Pack(code="MAX70", pack_kind="data", price_vnd=70000, validity_days=30, quota_kb=30 * GB,
         auto_renew=True, eligible=("prepaid",),
         name_vi="MAX70: 30 GB/tháng", name_en="MAX70: 30 GB a month"),
    Pack(code="V50", pack_kind="voice", price_vnd=50000, validity_days=30, voice_minutes=500,
         auto_renew=True, eligible=("prepaid", "postpaid"),
         name_vi="V50: 500 phút nội mạng", name_en="V50: 500 on-net minutes"),
    Pack(code="RW7", pack_kind="roaming", price_vnd=350000, validity_days=7, quota_kb=5 * GB,
         auto_renew=False, eligible=("prepaid", "postpaid"),
         name_vi="RW7: chuyển vùng quốc tế 5 GB, 7 ngày", name_en="RW7: roaming week, 5 GB"),
)  # fmt: skip

DEMO_PLANS: tuple[Plan, ...] = (
    Plan(code="MOBIQ", name="MobiQ", billing="prepaid", monthly_fee_vnd=0),
    Plan(code="Q263", name="Q263 sinh viên", billing="prepaid", monthly_fee_vnd=0),
    Plan(code="MOBICARD", name="MobiCard", billing="prepaid", monthly_fee_vnd=0),
    Plan(code="MOBIGOLD", name="MobiGold", billing="postpaid", monthly_fee_vnd=49000),
    Plan(code="MBIZ", name="M-Business", billing="postpaid", monthly_fee_vnd=199000),
)


def parse_item(doc: dict[str, object]) -> AnyItem:
    fields = {("code" if k == "_id" else k): v for k, v in doc.items() if k not in ("rev", "updated_at")}
    return Pack.model_validate(fields) if fields.get("item_kind") == "pack" else Vas.model_validate(fields)


def item_document(item: AnyItem) -> dict[str, object]:
    doc = item.model_dump(mode="json")
    return {"_id": doc.pop("code"), **doc}


def parse_plan(doc: dict[str, object]) -> Plan:
    return Plan.model_validate({("code" if k == "_id" else k): v for k, v in doc.items()})


def plan_document(plan: Plan) -> dict[str, object]:
    return {"_id": plan.code, **plan.model_dump(exclude={"code"})}
