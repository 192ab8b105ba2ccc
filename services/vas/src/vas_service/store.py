"""The VAS service's collections. Hot paths are inserts (claims and appends), never rewrites.

- `subscriptions`: written once, when requested (what was asked, by whom, through which channel).
- `consents`: the subscriber's consent log, append-only; every entry is also a claim (its `_id`
  names the decision: `<sub>:activated`, `<sub>:cancelled`, `<charge>:charged`, ...), so two
  concurrent confirms, cancels or answers record one decision. Entries that imply events carry
  them (kit outbox), relayed right away or by the sweeper.
- `charges`: one claim per (subscription, period), `_id` = `<sub>:<period>` = the charge id the
  account service debits once. A skip, a cancellation or the monthly cap claims the same key, so a
  period can never be both skipped and charged.
- `schedule`: the next renewal of each running subscription, appended (`<sub>:<period>`), found by
  the minute it falls due (`due_minute`) and its notice (`notice_minute`): equality on an index.
- `holds`: one per (subscriber, code) while a subscription runs: two confirms of two pending
  subscriptions of the same service cannot both start.
- `publish_batches`: a marker per batch of charge requests until they are on Kafka (the sweeper
  publishes what a crash left behind).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from servicekit.idempotency import COLLECTION as IDEMPOTENCY_KEYS

CATALOG = "catalog"
PLANS = "plans"
SUBSCRIPTIONS = "subscriptions"
CONSENTS = "consents"
CHARGES = "charges"
SCHEDULE = "schedule"
HOLDS = "holds"
GUARDS = "guards"
SUBSCRIBER_PLANS = "subscriber_plans"
PUBLISH_BATCHES = "publish_batches"
RUNS = "runs"

_BY_SUBSCRIBER = [("msisdn", ASCENDING), ("at", DESCENDING)]

INDEXES = {
    IDEMPOTENCY_KEYS: [],
    CATALOG: [],
    PLANS: [],
    HOLDS: [],
    SUBSCRIBER_PLANS: [],
    PUBLISH_BATCHES: [],
    RUNS: [],
    GUARDS: [IndexModel([("has_cap", ASCENDING)], name="capped")],
    SUBSCRIPTIONS: [IndexModel([("msisdn", ASCENDING)], name="by_subscriber")],
    CONSENTS: [
        IndexModel(_BY_SUBSCRIBER, name="by_subscriber_newest"),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        # The renewal pass looks for cancellations made while it ran, by hour.
        IndexModel([("action", ASCENDING), ("hour", ASCENDING)], name="by_action_hour"),
    ],
    CHARGES: [
        IndexModel([("msisdn", ASCENDING), ("month", ASCENDING)], name="by_subscriber_month"),
        IndexModel([("event_id", ASCENDING)], name="by_event"),
        IndexModel([("batch", ASCENDING)], name="by_batch"),
    ],
    SCHEDULE: [
        IndexModel([("due_minute", ASCENDING)], name="by_due_minute"),
        IndexModel([("notice_minute", ASCENDING)], name="by_notice_minute"),
        IndexModel([("subscription_id", ASCENDING)], name="by_subscription"),
        IndexModel([("msisdn", ASCENDING)], name="by_subscriber"),
    ],
}
