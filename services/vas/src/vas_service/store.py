"""The VAS service's collections. Hot paths are inserts (claims and appends), never rewrites.

- `subscriptions`: written once, when requested (what was asked, by whom, through which channel).
- `consents`: the subscriber's consent log, append-only; every entry is also a claim (its `_id`
  names the decision: `<sub>:activated`, `<sub>:cancelled`, `<charge>:charged`, ...), so two
  concurrent confirms, cancels or answers record one decision. Entries that imply events carry
  them (kit outbox), relayed right away or by the sweeper. Decisive entries (`fact`: activated,
  cancelled, refunded, refused) are read per subscriber to derive the views.
- `charges`: the chain of each subscription, one slot per period (see domain.subscriptions),
  `_id` = `<sub>:<period>` = the charge id the account service debits once.
- `sends`: a charge is published only under its ticket (`_id` = the charge id, verdict `send`);
  a cancellation inserts `void` tickets for the charges not yet on their way, so of a renewal
  and a cancellation racing for one charge exactly one decides.
- `schedule`: the next slot of each running subscription, appended (`<sub>:<period>`), found by
  the minute it falls due (`due_minute`) and its notice (`notice_minute`): equality on an index.
- `inflight`: one marker per use case under way (activation, cancellation, skip, a renewal
  chunk...), inserted before its claim and deleted when its completion is done; the resume pass
  completes what a crash or an outage left half done (see inflight.py).
- `budget`: the monthly cap's ledger, one entry per (subscriber, tenancy, month, seq) (budget.py).
- `holds`: one per (subscriber, code) while a subscription is pending or runs.
- `guards`, `tenancies` (when each number's current tenancy began), `runs` (the pass's watermark).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from servicekit.idempotency import COLLECTION as IDEMPOTENCY_KEYS

CATALOG = "catalog"
PLANS = "plans"
SUBSCRIPTIONS = "subscriptions"
CONSENTS = "consents"
CHARGES = "charges"
SENDS = "sends"
SCHEDULE = "schedule"
INFLIGHT = "inflight"
BUDGET = "budget"
HOLDS = "holds"
GUARDS = "guards"
TENANCIES = "tenancies"
RUNS = "runs"

_BY_SUBSCRIBER = [("msisdn", ASCENDING), ("at", DESCENDING)]

INDEXES = {
    IDEMPOTENCY_KEYS: [],
    CATALOG: [],
    PLANS: [],
    HOLDS: [],
    RUNS: [],
    TENANCIES: [],
    GUARDS: [IndexModel([("has_cap", ASCENDING)], name="capped")],
    SUBSCRIPTIONS: [IndexModel([("msisdn", ASCENDING)], name="by_subscriber")],
    CONSENTS: [
        IndexModel(_BY_SUBSCRIBER, name="by_subscriber_newest"),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        IndexModel([("msisdn", ASCENDING), ("fact", ASCENDING)], name="facts_by_subscriber"),
        IndexModel([("msisdn", ASCENDING), ("month", ASCENDING)], name="by_subscriber_month"),
    ],
    CHARGES: [
        IndexModel([("msisdn", ASCENDING), ("month", ASCENDING)], name="by_subscriber_month"),
        IndexModel([("subscription_id", ASCENDING)], name="by_subscription"),
        IndexModel([("event_id", ASCENDING)], name="by_event"),
        IndexModel([("batch", ASCENDING)], name="by_batch"),
    ],
    SENDS: [],
    INFLIGHT: [IndexModel([("kind", ASCENDING)], name="by_kind")],
    BUDGET: [
        IndexModel([("ref", ASCENDING)], name="one_per_cause", unique=True),
        IndexModel([("book", ASCENDING)], name="by_book"),
    ],
    SCHEDULE: [
        IndexModel([("due_minute", ASCENDING)], name="by_due_minute"),
        IndexModel([("notice_minute", ASCENDING)], name="by_notice_minute"),
        IndexModel([("subscription_id", ASCENDING)], name="by_subscription"),
        IndexModel([("msisdn", ASCENDING)], name="by_subscriber"),
    ],
}
