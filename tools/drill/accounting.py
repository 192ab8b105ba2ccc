"""What the subscribers were owed against what happened, once the traffic has drained.

- the account service's journal (the money's truth, read as `make ledger-check` reads it): one
  decision per top-up paid and per call rated (its business key), one VAS charge per
  subscription confirmed; a key missing is an effect lost, a decision for a top-up or call
  nobody made, or a second VAS charge, is an effect doubled;
- the main balance the app shows equals the funding, plus the top-ups, less the calls and VAS;
- the points ledger shows exactly one earning for each top-up (loyalty's own journal).

`settle` polls until all of it holds or its deadline passes: the last count is the figure.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from servicekit.mongo import Store

from .traffic import Member, Tally

JOURNAL = "journal"
ACCOUNT_DB = "account_service"


def count(
    member: Member, decisions: list[dict[str, Any]], main: int | None, earned: list[str] | None
) -> Tally:
    """One subscriber's tally from its journal decisions, main balance and earnings."""
    sent, tally = member.sent, Tally(unanswered=len(member.sent.unanswered))
    tally.findings += [f"{member.msisdn}: unanswered: {what}" for what in sent.unanswered]
    by_kind: dict[str, set[str]] = {"topup": set(), "usage": set()}
    vas_charges = 0
    for decision in decisions:
        kind, key = decision.get("kind"), str(decision["_id"])
        if kind in by_kind:
            by_kind[kind].add(key.split(":", 1)[1])
        elif kind == "vas_charge":
            vas_charges += 1
    for kind, owed in (("topup", set(sent.topups)), ("usage", set(sent.usage))):
        missing, extra = sorted(owed - by_kind[kind]), sorted(by_kind[kind] - owed)
        tally.lost += len(missing)
        tally.doubled += len(extra)
        tally.findings += [f"{member.msisdn}: {kind} {k} has no journal decision" for k in missing]
        tally.findings += [f"{member.msisdn}: {kind} {k} decided but never sent" for k in extra]
    tally.lost += max(0, sent.vas - vas_charges)
    tally.doubled += max(0, vas_charges - sent.vas)
    if vas_charges != sent.vas:
        tally.findings.append(f"{member.msisdn}: {vas_charges} VAS charges for {sent.vas} subscriptions")
    if main != sent.main():
        tally.balance_off += 1
        tally.findings.append(f"{member.msisdn}: main balance {main}, owed {sent.main()}")
    if earned is None:
        tally.balance_off += 1
        tally.findings.append(f"{member.msisdn}: points history unreadable")
    else:
        times = Counter(earned)
        missing = [t for t in sent.topups if times[t] == 0]
        twice = sum(n - 1 for t, n in times.items() if n > 1) + sum(1 for t in times if t not in sent.topups)
        tally.lost += len(missing)
        tally.doubled += twice
        tally.findings += [f"{member.msisdn}: top-up {t} earned no points" for t in missing]
        if twice:
            tally.findings.append(f"{member.msisdn}: points earned {twice} time(s) too many")
    return tally


class Books:
    """The journal, read-only (the account service's database)."""

    def __init__(self, url: str | None = None) -> None:
        self.store = Store(
            url or os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/"), ACCOUNT_DB, app_name="drill"
        )

    async def __aenter__(self) -> Books:
        await self.store.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()

    async def decisions(self, msisdn: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await self.store[JOURNAL].find({"msisdn": msisdn}, {"_id": 1, "kind": 1}).to_list()
        )
        return found

    async def tally(self, members: list[Member]) -> Tally:
        total = Tally()
        for member in members:
            decisions, main, earned = await asyncio.gather(
                self.decisions(member.msisdn), member.main_balance(), member.earnings()
            )
            total.add(count(member, decisions, main, earned))
        return total

    async def settle(self, members: list[Member], within: float) -> tuple[Tally, float]:
        """Counts until everything owed is there (or `within` seconds pass): the count, and when it held."""
        started = time.monotonic()
        while True:
            try:
                tally = await self.tally(members)
            except Exception as exc:  # the store still reconnecting: count again
                tally = Tally(balance_off=1, findings=[f"could not count: {exc!r}"])
            took = time.monotonic() - started
            if tally.clean or took > within:
                return tally, took
            await asyncio.sleep(1.0)
