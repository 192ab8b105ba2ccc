"""A store catalogue as imported: validated rows, from JSON or CSV, with row-numbered errors.

CSV columns: id, name, type, address, district, province, lat, lon, phone, services
(separated by `;`), and one column per weekday, hours_mon ... hours_sun, each holding that
day's intervals separated by `,` ("08:00-12:00,13:30-21:00"; empty: closed).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .geo import in_vietnam_area
from .hours import WEEKDAYS, parse_week

StoreType = Literal["mobifone_store", "agent"]
StoreServiceCode = Literal[
    "sim_swap",
    "esim",
    "new_subscription",
    "bill_payment",
    "topup",
    "phone_sales",
    "roaming",
    "postpaid_change",
]
MAX_ROWS = 50_000
MAX_ERRORS = 20  # reported per import: enough to fix a file, not a wall of text


class StoreRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = Field(min_length=1, max_length=120)
    type: StoreType
    address: str = Field(min_length=1, max_length=200)
    district: str = Field(min_length=1, max_length=80)
    province: str = Field(min_length=1, max_length=80)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 .]{3,20}$")
    services: tuple[StoreServiceCode, ...] = ()
    hours: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours_parse(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        parse_week(value)
        return {day: tuple(value.get(day, ())) for day in WEEKDAYS}  # every day, closed ones empty

    @model_validator(mode="after")
    def _in_vietnam(self) -> StoreRow:
        if not in_vietnam_area(self.lat, self.lon):
            raise ValueError(f"lat/lon {self.lat}, {self.lon} is not in Vietnam")
        return self


class CatalogueInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "row"
        parts.append(f"{field}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts[:3])


def validate_rows(raw_rows: Iterable[tuple[str, Any]]) -> list[StoreRow]:
    """Rows labelled for messages ("row 3 (line 4)"); every problem is reported, up to
    MAX_ERRORS, and any problem refuses the whole catalogue."""
    rows: list[StoreRow] = []
    errors: list[str] = []
    first_seen: dict[str, str] = {}
    for label, raw in raw_rows:
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(f"more than {MAX_ROWS} rows")
            break
        try:
            row = StoreRow.model_validate(raw)
        except ValidationError as exc:
            errors.append(f"{label}: {_describe(exc)}")
            continue
        if row.id in first_seen:
            errors.append(f"{label}: id {row.id} repeats {first_seen[row.id]}")
            continue
        first_seen[row.id] = label
        rows.append(row)
    if not rows and not errors:
        errors.append("the catalogue has no stores")
    if errors:
        extra = len(errors) - MAX_ERRORS
        raise CatalogueInvalid(errors[:MAX_ERRORS] + ([f"... and {extra} more"] if extra > 0 else []))
    return rows


def parse_json(content: bytes) -> list[StoreRow]:
    """A JSON list of stores, or {"stores": [...]}."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise CatalogueInvalid([f"not valid JSON: {exc}"]) from exc
    if isinstance(data, dict):
        data = data.get("stores")
    if not isinstance(data, list):
        raise CatalogueInvalid(['expected a JSON list of stores or {"stores": [...]}'])
    return validate_rows((f"row {n}", item) for n, item in enumerate(data, start=1))


CSV_COLUMNS = (
    "id", "name", "type", "address", "district", "province", "lat", "lon", "phone", "services",
    *(f"hours_{day}" for day in WEEKDAYS),
)  # fmt: skip


def _from_csv(record: Mapping[str, str | None]) -> dict[str, Any]:
    def cell(name: str) -> str:
        return (record.get(name) or "").strip()

    unknown = [k for k in record if k not in CSV_COLUMNS]
    row: dict[str, Any] = {k: cell(k) for k in CSV_COLUMNS[:8]}
    if unknown:
        row["unknown columns"] = unknown  # refused by extra="forbid", with the names
    row["phone"] = cell("phone") or None
    row["services"] = [s.strip() for s in cell("services").split(";") if s.strip()]
    row["hours"] = {
        day: [i.strip() for i in cell(f"hours_{day}").split(",") if i.strip()] for day in WEEKDAYS
    }
    return row


def parse_csv(content: bytes) -> list[StoreRow]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueInvalid([f"the CSV is not UTF-8: {exc}"]) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CSV_COLUMNS[:8] if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogueInvalid([f"the CSV header lacks column(s) {', '.join(missing)}"])
    return validate_rows(
        (f"row {n} (line {reader.line_num})", _from_csv(record)) for n, record in enumerate(reader, start=1)
    )


def to_csv(rows: Iterable[StoreRow]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record: dict[str, Any] = row.model_dump(exclude={"services", "hours"})
        record["phone"] = row.phone or ""
        record["services"] = ";".join(row.services)
        for day in WEEKDAYS:
            record[f"hours_{day}"] = ",".join(row.hours.get(day, ()))
        writer.writerow(record)
    return out.getvalue().encode()
