"""The VAS promise under faults, as a model-based test (issue 17).

A hypothesis state machine drives the real VAS, account and payment services through the
gateway, none played by the test: a fresh subscriber subscribes, confirms, cancels (one or
all), skips a renewal, buys packs, turns a pack's auto-renew off, sets a monthly cap, tops up
with a scratch card, and the operators run renewal passes at later (simulated) times. Between
steps the platform is hurt: Kafka is frozen for 20 s while a step runs, or the VAS service is
SIGKILLed in the middle of one and started again. A step whose answer was lost is retried
until it is definitive (every step is idempotent: Idempotency-Keys, named periods), and only
then does the plain model below learn what the subscriber agreed to.

After every step, once the platform has settled, the model checks:
- every charge the account service took matches an agreed, unskipped period (so nothing is
  charged after a cancellation or an auto-renew-off answered, nor for a skipped period);
- every agreed period was decided (charged, refused or voided): nothing is active without its
  charge, no renewal ends silently;
- every subscription the subscriber agreed to is visible in `GET /me/vas` with its state;
- the monthly cap is never exceeded by charges decided while it was set;
- a pack's allowance is in the balances exactly once per charge;
- the consent log tells the same story as the account's charges.

`make test` runs a few short examples (MODEL_EXAMPLES, MODEL_STEPS); `make soak
SOAK_MINUTES=30` runs examples for as long as asked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .conftest import ACCOUNT, CARRIER_PROXY, GATEWAY, OPS_HEADERS, PAYMENT
from .faults import can_pause_kafka, kafka_paused, kill_vas, start_vas

pytestmark = pytest.mark.e2e
VAS_URL = os.environ.get("VAS_URL", "http://127.0.0.1:8102")
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
SERVICES = {"MCLIP": (3_000, 1), "TINNONG": (1_000, 1), "TUVI": (2_000, 1), "MOBITV": (10_000, 7)}
PACKS = {  # price, days, (balances list, total shown)
    "D15": (10_000, 1, ("data", "total_mb", 1536.0)),
    "C90N": (90_000, 30, ("data", "total_mb", 122880.0)),
    "V50": (50_000, 30, ("voice", "total_minutes", 500.0)),
}
VERBOSE = bool(os.environ.get("MODEL_VERBOSE"))
UNKNOWN_ERRORS = ("request_in_progress", "busy", "unavailable", "internal_error")
SETTLE_SECONDS = float(os.environ.get("MODEL_SETTLE_SECONDS", "150"))


def note(line: str) -> None:
    """What the run does, step by step (MODEL_VERBOSE=1, with pytest -s)."""
    if VERBOSE:
        print(f"[model {datetime.now(UTC):%H:%M:%S}] {line}", flush=True)


class Unsettled(AssertionError):
    pass


EXAMPLES = [0]  # examples that held, across the soak's runs


@dataclass
class Sub:
    sid: str
    code: str
    pack: bool
    price: int
    days: int
    state: str = "pending"  # pending | live | cancelled
    origin: datetime | None = None
    renews: bool = True
    allowed: set[int] = field(default_factory=set)  # periods the subscriber agreed to pay
    skipped: set[int] = field(default_factory=set)


@dataclass
class Op:
    """One step: `call` makes the request (retried until definitive), `apply` teaches the model."""

    name: str
    call: Callable[[], httpx.Response]
    apply: Callable[[httpx.Response], None]


def definitive(call: Callable[[], httpx.Response], within: float = 240.0) -> httpx.Response:
    """The answer of a request, retried while it is not known (5xx, a lost connection, the
    request still running after a crash): every step is safe to repeat."""
    deadline = time.monotonic() + within
    while True:
        try:
            r = call()
            unknown = r.status_code >= 500 or (
                r.status_code in (409, 503) and r.json().get("error") in UNKNOWN_ERRORS
            )
            if not unknown:
                return r
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"no definitive answer within {within} s: {last}")
        time.sleep(1.0)


class VasModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Not `random`: hypothesis seeds it the same for every example.
        self.msisdn = "8478" + f"{uuid.uuid4().int % 10**7:07d}"
        self.http = httpx.Client(
            base_url=GATEWAY,
            transport=httpx.HTTPTransport(local_address=CARRIER_PROXY),
            timeout=60.0,
            trust_env=False,
        )
        self.ops = httpx.Client(timeout=60.0, trust_env=False, headers=OPS_HEADERS)
        r = self.ops.put(
            f"{ACCOUNT}/internal/v1/subscribers/{self.msisdn}",
            json={"name": "Khách Mô Hình", "plan": "prepaid", "status": "active"},
        )
        r.raise_for_status()
        login = definitive(
            lambda: self.http.post("/api/v1/auth/header-login", headers={"X-MSISDN": self.msisdn})
        )
        assert login.status_code == 200, login.text
        self.auth = {"Authorization": f"Bearer {login.json()['access_token']}", "X-MSISDN": self.msisdn}
        self.subs: dict[str, Sub] = {}
        self.clock = datetime.now(UTC)
        self.caps: list[tuple[datetime, int]] = []
        self.before_cap: set[str] = set()  # charges decided before the first cap was set
        self.last_seen: dict[str, Any] = {"charges": []}
        self.topped_up = 0
        self.top_up(100_000)

    def teardown(self) -> None:
        self.http.close()
        self.ops.close()
        EXAMPLES[0] += 1
        note(f"example {EXAMPLES[0]} held")

    # -- requests ---------------------------------------------------------------------------------

    def post(self, path: str, key: str | None = None, body: Any = None) -> httpx.Response:
        headers = self.auth | ({"Idempotency-Key": key} if key else {})
        return self.http.post(path, headers=headers, json=body)

    def run(self, op: Op) -> None:
        answer = definitive(op.call)
        note(f"{op.name}: {answer.status_code}")
        op.apply(answer)

    def top_up(self, value: int) -> None:
        serial, pin = f"{uuid.uuid4().int % 10**14:014d}", f"{uuid.uuid4().int % 10**13:013d}"
        card = {
            "serial": serial,
            "pin": pin,
            "face_value_vnd": value,
            "expires_at": "2030-12-31T00:00:00+00:00",
        }
        r = self.ops.post(
            f"{PAYMENT}/internal/v1/scratch-cards/batches", json={"batch_id": f"m-{serial}", "cards": [card]}
        )
        assert r.status_code == 201, r.text
        scratched = definitive(
            lambda: self.http.post(
                "/api/v1/me/topups/scratch-card", json={"serial": serial, "pin": pin}, headers=self.auth
            )
        )
        assert scratched.status_code in (200, 201, 202), scratched.text
        self.topped_up += value

    # -- the steps, as operations (a fault step runs one under the fault, then definitively) ----

    def op_subscribe(self, code: str) -> Op:
        key = f"m-{uuid.uuid4().hex[:16]}"

        def apply(r: httpx.Response) -> None:
            if r.status_code == 201:
                price, days = SERVICES[code]
                self.subs.setdefault(r.json()["id"], Sub(r.json()["id"], code, False, price, days))
                return
            assert (r.status_code, r.json()["error"]) == (409, "already_subscribed"), r.text
            assert any(s.code == code and s.state in ("pending", "live") for s in self.subs.values()), (
                f"{code} refused as already running, and the model has none: {r.text}"
            )

        return Op(f"subscribe {code}", lambda: self.post(f"/api/v1/me/vas/{code}/subscribe", key), apply)

    def op_confirm(self, sid: str) -> Op:
        def apply(r: httpx.Response) -> None:
            sub = self.subs[sid]
            if r.status_code == 200 and r.json()["status"] in ("active", "suspended", "ended"):
                self._started(sub, r.json())
                return
            assert r.status_code == 409, r.text
            assert r.json()["error"] in ("monthly_cap_reached", "cancelled", "expired"), r.text
            if r.json()["error"] == "monthly_cap_reached":
                assert self.caps, f"a cap refusal with no cap set: {r.text}"

        return Op(f"confirm {sid}", lambda: self.post(f"/api/v1/me/vas/subscriptions/{sid}/confirm"), apply)

    def op_buy(self, code: str, auto_renew: bool) -> Op:
        key = f"m-{uuid.uuid4().hex[:16]}"

        def apply(r: httpx.Response) -> None:
            if r.status_code == 201:
                price, days, _ = PACKS[code]
                sub = self.subs.setdefault(
                    r.json()["id"], Sub(r.json()["id"], code, True, price, days, renews=auto_renew)
                )
                self._started(sub, r.json())
                return
            assert r.status_code == 409 and r.json()["error"] in (
                "already_subscribed",
                "monthly_cap_reached",
            ), r.text

        call = lambda: self.post(f"/api/v1/me/vas/packs/{code}/buy", key, {"auto_renew": auto_renew})  # noqa: E731
        return Op(f"buy {code} auto_renew={auto_renew}", call, apply)

    def _started(self, sub: Sub, view: dict[str, Any]) -> None:
        if sub.state == "pending":
            sub.state = "live"
            sub.origin = datetime.fromisoformat(view["started_at"])
            sub.allowed.add(0)

    def op_cancel(self, sid: str) -> Op:
        def apply(r: httpx.Response) -> None:
            assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
            self.subs[sid].state, self.subs[sid].renews = "cancelled", False

        return Op(f"cancel {sid}", lambda: self.post(f"/api/v1/me/vas/subscriptions/{sid}/cancel"), apply)

    def op_cancel_all(self) -> Op:
        def apply(r: httpx.Response) -> None:
            assert r.status_code == 200, r.text
            for sub in self.subs.values():
                if sub.state in ("pending", "live"):
                    sub.state, sub.renews = "cancelled", False

        return Op("cancel all", lambda: self.post("/api/v1/me/vas/cancel-all"), apply)

    def op_pass(self, days: int) -> Op:
        at = self.clock + timedelta(days=days, minutes=1)

        def call() -> httpx.Response:
            return self.ops.post(
                f"{VAS_URL}/internal/v1/vas/renewals/run", json={"msisdn": self.msisdn, "now": at.isoformat()}
            )

        def apply(r: httpx.Response) -> None:
            assert r.status_code == 200, r.text
            self.clock = max(self.clock, at)
            for sub in self.subs.values():
                if sub.state != "live" or not sub.renews or sub.origin is None:
                    continue
                period = 1
                while sub.origin + timedelta(days=sub.days * period) <= at:
                    if period not in sub.skipped:
                        sub.allowed.add(period)
                    period += 1

        return Op(f"renewal pass at +{days}d", call, apply)

    # -- rules -----------------------------------------------------------------------------------

    def _with(self, *states: str, packs: bool | None = None, renewing: bool = False) -> list[str]:
        return sorted(
            s.sid
            for s in self.subs.values()
            if s.state in states and (packs is None or s.pack == packs) and (s.renews or not renewing)
        )

    @rule(code=st.sampled_from(sorted(SERVICES)))
    def subscribe(self, code: str) -> None:
        self.run(self.op_subscribe(code))

    @precondition(lambda self: bool(self._with("pending")))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        self.run(self.op_confirm(data.draw(st.sampled_from(self._with("pending")))))

    @rule(code=st.sampled_from(sorted(PACKS)), auto_renew=st.booleans())
    def buy_a_pack(self, code: str, auto_renew: bool) -> None:
        self.run(self.op_buy(code, auto_renew))

    @precondition(lambda self: bool(self._with("pending", "live")))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.run(self.op_cancel(data.draw(st.sampled_from(self._with("pending", "live")))))

    @precondition(lambda self: bool(self._with("pending", "live")))
    @rule()
    def cancel_all(self) -> None:
        self.run(self.op_cancel_all())

    @precondition(lambda self: bool(self._with("live", packs=False, renewing=True)))
    @rule(data=st.data())
    def skip_the_coming_renewal(self, data: st.DataObject) -> None:
        sub = self.subs[data.draw(st.sampled_from(self._with("live", packs=False, renewing=True)))]
        view = definitive(lambda: self.http.get(f"/api/v1/me/vas/subscriptions/{sub.sid}", headers=self.auth))
        coming = view.json().get("next_renewal_at")
        if coming is None or sub.origin is None:
            return
        period = round((datetime.fromisoformat(coming) - sub.origin) / timedelta(days=sub.days))
        r = definitive(
            lambda: self.post(f"/api/v1/me/vas/subscriptions/{sub.sid}/skip", body={"period": period})
        )
        if r.status_code == 200:
            sub.skipped.add(period)
            sub.allowed.discard(period)
        else:
            assert r.status_code == 409, r.text

    @precondition(lambda self: bool(self._with("live", packs=True, renewing=True)))
    @rule(data=st.data())
    def turn_auto_renew_off(self, data: st.DataObject) -> None:
        sub = self.subs[data.draw(st.sampled_from(self._with("live", packs=True, renewing=True)))]
        r = definitive(
            lambda: self.http.put(
                f"/api/v1/me/vas/packs/{sub.code}/auto-renew", json={"enabled": False}, headers=self.auth
            )
        )
        if r.status_code == 200:
            sub.renews = False
        else:
            assert r.status_code == 404, r.text  # the pack is not running (ended, suspended by its cap)

    @rule(cap=st.sampled_from([5_000, 20_000, 60_000, 150_000]))
    def set_the_cap(self, cap: int) -> None:
        guard = {"block_external": False, "monthly_cap_vnd": cap}
        r = definitive(lambda: self.http.put("/api/v1/me/vas/guard", json=guard, headers=self.auth))
        assert r.status_code == 200, r.text
        note(f"cap {cap}")
        if not self.caps:
            self.before_cap = {c["id"] for c in self.last_seen["charges"]}
        self.caps.append((datetime.now(UTC), cap))

    @rule(value=st.sampled_from([20_000, 100_000]))
    def top_up_with_a_scratch_card(self, value: int) -> None:
        note(f"top up {value}")
        self.top_up(value)

    @rule(days=st.integers(1, 4))
    def run_a_renewal_pass_later(self, days: int) -> None:
        self.run(self.op_pass(days))

    # -- faults ----------------------------------------------------------------------------------

    def draw_op(self, data: st.DataObject) -> Op:
        choices = ["subscribe", "buy", "pass"] + (["confirm"] if self._with("pending") else [])
        choices += ["cancel"] if self._with("pending", "live") else []
        kind = data.draw(st.sampled_from(choices))
        if kind == "subscribe":
            return self.op_subscribe(data.draw(st.sampled_from(sorted(SERVICES))))
        if kind == "buy":
            return self.op_buy(data.draw(st.sampled_from(sorted(PACKS))), data.draw(st.booleans()))
        if kind == "confirm":
            return self.op_confirm(data.draw(st.sampled_from(self._with("pending"))))
        if kind == "cancel":
            return self.op_cancel(data.draw(st.sampled_from(self._with("pending", "live"))))
        return self.op_pass(data.draw(st.integers(1, 3)))

    @precondition(lambda self: can_pause_kafka())
    @rule(data=st.data())
    def a_step_while_kafka_is_frozen_for_20_s(self, data: st.DataObject) -> None:
        op = self.draw_op(data)
        note(f"Kafka frozen for 20 s during: {op.name}")
        first = threading.Thread(target=_ignore_errors(op.call), daemon=True)
        with kafka_paused():
            first.start()  # answered or not: its effect is unknown until the retry below
            time.sleep(20.0)
        first.join(timeout=70)
        self.run(op)

    @rule(data=st.data(), after_ms=st.integers(0, 600))
    def a_step_cut_by_a_vas_sigkill(self, data: st.DataObject, after_ms: int) -> None:
        op = self.draw_op(data)
        note(f"VAS SIGKILLed {after_ms} ms into: {op.name}")
        first = threading.Thread(target=_ignore_errors(op.call), daemon=True)
        first.start()
        time.sleep(after_ms / 1000)
        kill_vas()
        first.join(timeout=70)
        start_vas()
        self.run(op)

    # -- what must hold --------------------------------------------------------------------------

    @invariant()
    def the_promises_hold(self) -> None:
        seen = self.settled()
        self.last_seen = seen
        self.check_charges_are_agreed(seen)
        self.check_the_cap(seen)
        self.check_every_subscription_is_visible(seen)
        self.check_pack_allowances(seen)
        self.check_the_log_tells_the_same_story(seen)

    def snapshot(self) -> dict[str, Any]:
        charges: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = definitive(
                lambda p=params: self.http.get("/api/v1/me/charges", params=p, headers=self.auth)
            ).json()
            charges += [c for c in page["items"] if str(c["id"]).startswith("vas:")]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        log = definitive(
            lambda: self.http.get("/api/v1/me/vas/consents", params={"limit": 500}, headers=self.auth)
        )
        mine = definitive(lambda: self.http.get("/api/v1/me/vas", params={"all": "true"}, headers=self.auth))
        balances = definitive(lambda: self.http.get("/api/v1/me/balances", headers=self.auth))
        return {
            "charges": charges,
            "log": log.json()["items"],
            "vas": mine.json(),
            "balances": balances.json(),
        }

    def undecided(self, seen: dict[str, Any]) -> list[str]:
        """Agreed periods with no outcome in the log yet (a live subscription's first charge and
        every renewal a pass answered for; a cancelled one's renewals)."""
        decided = {
            e["charge_id"]
            for e in seen["log"]
            if e["action"] in ("charged", "charge_failed", "charge_voided")
        }
        skipped = {
            (e.get("subscription_id"), e.get("period"))
            for e in seen["log"]
            if e["action"] == "renewal_skipped"
        }
        missing = []
        for sub in self.subs.values():
            for period in sorted(sub.allowed):
                if sub.state == "cancelled" and period == 0:
                    continue  # a cancellation may have got slot 0 before the charge was asked
                if f"{sub.sid}:{period}" not in decided and (sub.sid, period) not in skipped:
                    missing.append(f"{sub.code} {sub.sid}:{period}")
        charged = {c["id"].removeprefix("vas:") for c in seen["charges"]}
        logged = {e["charge_id"] for e in seen["log"] if e["action"] == "charged"}
        missing += [f"account charge {c} not in the log" for c in charged - logged]
        missing += [f"logged charge {c} not taken by the account" for c in logged - charged]
        return missing

    def settled(self) -> dict[str, Any]:
        """The platform's state once every decision has landed and nothing moves for a second."""
        deadline = time.monotonic() + SETTLE_SECONDS
        previous: dict[str, Any] | None = None
        while True:
            seen = self.snapshot()
            missing = self.undecided(seen)
            if not missing and previous is not None and _same(previous, seen):
                return seen
            if time.monotonic() > deadline:
                raise Unsettled(f"not settled after {SETTLE_SECONDS} s: {missing[:10]}")
            previous = seen if not missing else None
            time.sleep(1.0)

    def check_charges_are_agreed(self, seen: dict[str, Any]) -> None:
        for charge in seen["charges"]:
            sid, _, period = charge["id"].removeprefix("vas:").rpartition(":")
            sub = self.subs.get(sid)
            assert sub is not None, f"charged for a subscription never agreed to: {charge}"
            assert int(period) in sub.allowed, f"charged for period {period} of {sub} not agreed: {charge}"
            assert int(period) not in sub.skipped, f"charged for a skipped period: {charge}"

    def check_the_cap(self, seen: dict[str, Any]) -> None:
        """In each Vietnamese month, what was charged stays within the highest cap set, unless
        charges decided before any cap already went beyond it."""
        if not self.caps:
            return
        highest = max(cap for _, cap in self.caps)
        months: dict[str, list[tuple[bool, int]]] = defaultdict(list)
        for charge in seen["charges"]:
            month = datetime.fromisoformat(charge["at"]).astimezone(VIETNAM).strftime("%Y%m")
            months[month].append((charge["id"] in self.before_cap, int(charge["amount_vnd"])))
        for month, charged in months.items():
            before = sum(a for earlier, a in charged if earlier)
            total = sum(a for _, a in charged)
            assert total <= max(highest, before), (
                f"{month}: {total} đ charged, cap {highest} đ (before it {before})"
            )

    def check_every_subscription_is_visible(self, seen: dict[str, Any]) -> None:
        shown = {item["id"]: item for item in seen["vas"]["items"]}
        for sub in self.subs.values():
            item = shown.get(sub.sid)
            assert item is not None, f"{sub} is not in GET /me/vas"
            expected = {
                "pending": {"pending", "expired"},
                "cancelled": {"cancelled"},
                "live": {"active", "suspended", "ended"}
                if (sub.pack or not sub.renews)
                else {"active", "suspended"},
            }[sub.state]
            assert item["status"] in expected, f"{sub} shows {item['status']}"
        for item in shown.values():
            assert item["id"] in self.subs, f"a subscription nobody asked for is shown: {item}"

    def check_pack_allowances(self, seen: dict[str, Any]) -> None:
        balances = seen["balances"]
        for code, (_, _, (where, total, quota)) in PACKS.items():
            grants = [g for g in balances.get(where, []) if g["id"].startswith(f"{code}-")]
            ids = [g["id"] for g in grants]
            assert len(ids) == len(set(ids)), f"a {code} allowance shown twice: {ids}"
            for grant in grants:
                assert grant[total] == quota, (
                    f"{code} allowance {grant['id']} holds {grant[total]}, not {quota}"
                )
            charged = {
                f"{code}-{c['id'].removeprefix('vas:').replace(':', '-')}"
                for c in seen["charges"]
                if c.get("counterpart") == code
            }
            assert set(ids) <= charged, f"{code} allowances without a charge: {set(ids) - charged}"
            live_charged = {g for g in charged if _expires(g, self.subs, code) > datetime.now(UTC)}
            assert live_charged <= set(ids), (
                f"{code} charges without their allowance: {live_charged - set(ids)}"
            )

    def check_the_log_tells_the_same_story(self, seen: dict[str, Any]) -> None:
        cancelled = {e.get("subscription_id") for e in seen["log"] if e["action"] == "cancelled"}
        for sub in self.subs.values():
            if sub.state == "cancelled":
                assert sub.sid in cancelled, f"{sub} cancelled, but not in the consent log"
            for period in sub.skipped:
                assert any(
                    e["action"] == "renewal_skipped"
                    and e.get("subscription_id") == sub.sid
                    and e.get("period") == period
                    for e in seen["log"]
                ), f"{sub} skipped {period}, but not in the consent log"


def _expires(grant_id: str, subs: dict[str, Sub], code: str) -> datetime:
    """When the allowance of a pack charge ends (its period's end)."""
    sid, _, period = grant_id.removeprefix(f"{code}-").rpartition("-")
    sub = subs[sid]
    assert sub.origin is not None
    return sub.origin + timedelta(days=sub.days * (int(period) + 1))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(s: dict[str, Any]) -> Any:
        return (
            sorted(c["id"] for c in s["charges"]),
            sorted(e["id"] for e in s["log"]),
            sorted((i["id"], i["status"]) for i in s["vas"]["items"]),
        )

    return bool(key(a) == key(b))


def _ignore_errors(call: Callable[[], httpx.Response]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(Exception):  # its effect is learnt from the retry
            call()

    return run


SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "0"))


@pytest.mark.timeout(int(SOAK_MINUTES * 60) + 2400)
def test_the_vas_promise_holds_under_faults() -> None:
    """A bounded run for `make test`; `make soak` (SOAK_MINUTES) runs examples until time is up."""
    soak_minutes = SOAK_MINUTES
    examples = int(os.environ.get("MODEL_EXAMPLES", "2"))
    steps = int(os.environ.get("MODEL_STEPS", "6"))
    options = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    if not soak_minutes:
        run_state_machine_as_test(VasModel, settings=options)
        return
    # Runs of SOAK_BATCH examples (each run draws afresh from a random seed; its first example
    # is hypothesis's simplest), run after run until the time is up. A run is never cut short:
    # hypothesis cannot end a run from inside an example without calling it flaky.
    until = time.monotonic() + soak_minutes * 60
    started = time.monotonic()
    batch = int(os.environ.get("SOAK_BATCH", "8"))
    while time.monotonic() < until:
        run_state_machine_as_test(VasModel, settings=settings(options, max_examples=batch))
    minutes = (time.monotonic() - started) / 60
    print(f"soak: {EXAMPLES[0]} examples of up to {steps} steps in {minutes:.0f} minutes, every promise held")
