"""Vietnam time (Asia/Ho_Chi_Minh, no daylight saving) for VAS months and dates shown to a person.

A VAS month is the subscriber's calendar month: a charge at 05:00 on 1 March in Hà Nội is a
March charge, although it is still 28 February in UTC. To be replaced by the kit's one
Vietnam-time helper (issue 18) once it is in main: only these names are used elsewhere.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def local(moment: datetime) -> datetime:
    return moment.astimezone(VIETNAM)


def month_of(moment: datetime) -> str:
    """The Vietnamese calendar month of a moment, `YYYYMM`."""
    return local(moment).strftime("%Y%m")


def day_shown(moment: datetime) -> str:
    """A date as a person in Vietnam reads it: `dd/mm/yyyy`."""
    return local(moment).strftime("%d/%m/%Y")
