"""The fault drill (tools/drill, `make drill`): its short version on the running platform, and
its counting on made-up books (what it calls lost and doubled)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.drill.accounting import count
from tools.drill.platform import Platform
from tools.drill.traffic import FUNDING, VAS_PRICE, Member

from .conftest import ROOT, script_env


def member(**sent: Any) -> Member:
    m = Member(Platform({"GATEWAY_PORT": "1"}))
    m.msisdn = "84780000001"
    m.sent.topups = {"SCfunding": FUNDING} | sent.get("topups", {})
    m.sent.usage = sent.get("usage", {})
    m.sent.vas = sent.get("vas", 0)
    return m


def decisions(*keys: str) -> list[dict[str, Any]]:
    kinds = {"topup": "topup", "usage": "usage", "vas": "vas_charge"}
    return [{"_id": key, "kind": kinds[key.split(":")[0]]} for key in keys]


def test_books_that_match_what_was_sent_count_nothing_lost_or_doubled() -> None:
    m = member(topups={"PAY1": 50_000}, usage={"U1": 500}, vas=1)
    books = decisions("topup:SCfunding", "topup:PAY1", "usage:U1", "vas:c1")
    tally = count(m, books, FUNDING + 50_000 - 500 - VAS_PRICE, ["SCfunding", "PAY1"])
    assert tally.clean, tally.findings
    assert (tally.lost, tally.doubled, tally.balance_off) == (0, 0, 0)


def test_a_missing_decision_or_earning_is_lost_and_an_extra_one_is_doubled() -> None:
    m = member(topups={"PAY1": 50_000, "PAY2": 10_000}, usage={"U1": 500, "U2": 700}, vas=1)
    books = decisions("topup:SCfunding", "topup:PAY1", "topup:SC999", "usage:U1", "vas:c1", "vas:c2")
    main = FUNDING + 50_000 + 10_000 - 500 - 700 - VAS_PRICE
    tally = count(m, books, main, ["SCfunding", "PAY1", "PAY1"])
    # Lost: top-up PAY2, call U2, the points of PAY2. Doubled: SC999 nobody scratched, a second
    # VAS charge, PAY1's points twice.
    assert tally.lost == 3
    assert tally.doubled == 3
    assert not tally.clean


def test_a_wrong_balance_or_an_unanswered_operation_fails_the_count() -> None:
    m = member()
    assert count(m, decisions("topup:SCfunding"), FUNDING + 1, ["SCfunding"]).balance_off == 1
    m.sent.unanswered.append("card top-up of 84780000001")
    assert count(m, decisions("topup:SCfunding"), FUNDING, ["SCfunding"]).unanswered == 1


@pytest.mark.integration
@pytest.mark.timeout(1800)
async def test_the_short_drill_recovers_from_each_fault_losing_and_doubling_nothing(
    tmp_path: Path, healthy: object
) -> None:
    """A kill of the account service, a broker restart and the account service cut off from the
    broker for 10 s, with top-ups, calls, VAS and points flowing through each."""
    out = tmp_path / "drill.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.drill", "--short", "--json", str(out)],
        cwd=ROOT,
        env=script_env(KAFKA_PROXIED_PORT="9094"),
        capture_output=True,
        text=True,
        timeout=1780,
        check=False,
    )
    print(done.stdout)
    assert out.exists(), done.stdout + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [r["fault"] for r in results] == ["kill account", "restart kafka", "cut account-kafka"]
    for r in results:
        assert r["recover_seconds"] is not None, r
        assert r["operations"] >= 10, r  # traffic really flowed through the fault
        assert (r["lost"], r["doubled"], r["balance_off"], r["unanswered"]) == (0, 0, 0, 0), r["findings"]
        assert r["ledger_check"], r["findings"]
        assert not r["restarted_under_fault"], r
    assert results[0]["went_unready"]  # a kill is seen
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
