"""The provider's clock format: yyyyMMddHHmmss in GMT+7 (Vietnam has no daylight saving time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

VN_TZ = timezone(timedelta(hours=7), "GMT+7")
_FORMAT = "%Y%m%d%H%M%S"


def format_vnp_time(moment: datetime) -> str:
    """Render an aware datetime the way the provider expects it (GMT+7, second precision)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime so the GMT+7 conversion is unambiguous")
    return moment.astimezone(VN_TZ).strftime(_FORMAT)


def parse_vnp_time(text: str) -> datetime:
    """Parse a provider timestamp into an aware UTC datetime; raises ValueError when it is not 14 digits."""
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise ValueError(f"expected yyyyMMddHHmmss, got {text[:32]!r}")
    return datetime.strptime(text, _FORMAT).replace(tzinfo=VN_TZ).astimezone(UTC)
