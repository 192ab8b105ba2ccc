"""The monthly cap, decided like money.

A capped subscriber's spending in a (Vietnamese) month is a ledger: entries `<book>:<seq>`
(book = subscriber, tenancy, month) each holding what was spent after it. A charge reserves its
amount by inserting the next entry (seq + 1) when the cap allows it; two charges deciding at
once both try the same seq and the unique `_id` lets one through, the other reads again and
decides on the new total. So two concurrent confirmations, a pack purchase and a renewal can
never both pass a cap that holds only one of them (a read-then-write check could, and FerretDB
runs conditional updates without a lock). Each entry also names its cause (`ref`, unique:
`<charge>:reserve` / `<charge>:release`), so a retried reservation takes nothing twice and a
refused or refunded charge gives its share back once.

Charges made while no cap was set are not in the ledger: the first entry of a month, and the
entry written when a cap is set (`anchor`), start from what the month's charges cost.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from servicekit.errors import ApiError
from servicekit.mongo import Doc, Store
from servicekit.vntime import month_of

from .domain.subscriptions import within_cap
from .store import BUDGET

SpendOf = Callable[[str, datetime | None, datetime], Awaitable[int]]
ATTEMPTS = 20


def book_of(msisdn: str, tenancy: datetime | None, now: datetime) -> str:
    since = int(tenancy.timestamp()) if tenancy else 0
    return f"{msisdn}:{since}:{month_of(now)}"


class Budget:
    def __init__(self, store: Store, spend: SpendOf) -> None:
        self.store = store
        self.spend = spend  # what the month's charges cost (views.month_spend)

    async def reserve(
        self, msisdn: str, tenancy: datetime | None, cap: int, charge_id: str, amount: int, now: datetime
    ) -> bool:
        """Take `amount` of the month's cap for this charge; False when it would exceed the cap."""
        ref = f"{charge_id}:reserve"
        if await self.store[BUDGET].find_one({"ref": ref}) is not None:
            return True
        book = book_of(msisdn, tenancy, now)
        for _ in range(ATTEMPTS):
            seq, spent = await self._position(book, msisdn, tenancy, now)
            if not within_cap(cap, spent, amount):
                return False
            if await self._append(book, msisdn, seq + 1, ref, amount, spent + amount, now):
                return True
            if await self.store[BUDGET].find_one({"ref": ref}) is not None:
                return True
        raise ApiError(409, "busy", "your monthly cap is being updated; retry")

    async def release(self, msisdn: str, charge_id: str) -> None:
        """Give back a reserved charge's share (refused, voided or refunded); once."""
        reserved = await self.store[BUDGET].find_one({"ref": f"{charge_id}:reserve"})
        ref = f"{charge_id}:release"
        if reserved is None or await self.store[BUDGET].find_one({"ref": ref}) is not None:
            return
        book, amount = reserved["book"], int(reserved["delta"])
        for _ in range(ATTEMPTS):
            last = await self._last(book)
            seq, spent = (last["seq"], last["spent_after"]) if last else (0, amount)
            if await self._append(
                book, msisdn, seq + 1, ref, -amount, max(0, spent - amount), reserved["at"]
            ):
                return
            if await self.store[BUDGET].find_one({"ref": ref}) is not None:
                return

    async def anchor(self, msisdn: str, tenancy: datetime | None, now: datetime) -> None:
        """A cap was set: count what the month's charges cost so far (made with no cap, they
        reserved nothing), never less than the ledger already holds."""
        book = book_of(msisdn, tenancy, now)
        ref = f"anchor:{uuid.uuid4().hex}"
        for _ in range(ATTEMPTS):
            last = await self._last(book)
            counted = await self.spend(msisdn, tenancy, now)
            seq, held = (last["seq"], last["spent_after"]) if last else (0, 0)
            if await self._append(book, msisdn, seq + 1, ref, 0, max(counted, held), now):
                return

    async def _position(
        self, book: str, msisdn: str, tenancy: datetime | None, now: datetime
    ) -> tuple[int, int]:
        last = await self._last(book)
        if last is not None:
            return int(last["seq"]), int(last["spent_after"])
        return 0, await self.spend(msisdn, tenancy, now)

    async def _last(self, book: str) -> Doc | None:
        entries = await self.store[BUDGET].find({"book": book}).sort([("seq", -1)]).limit(1).to_list()
        return entries[0] if entries else None

    async def _append(
        self, book: str, msisdn: str, seq: int, ref: str, delta: int, spent_after: int, now: datetime
    ) -> bool:
        try:
            await self.store[BUDGET].insert_one(
                {
                    "_id": f"{book}:{seq}",
                    "book": book,
                    "msisdn": msisdn,
                    "seq": seq,
                    "ref": ref,
                    "delta": delta,
                    "spent_after": spent_after,
                    "at": now,
                }
            )
            return True
        except DuplicateKeyError:
            return False
