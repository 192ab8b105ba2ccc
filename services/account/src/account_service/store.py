"""The account service's collections and their indexes (created at start-up)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

SUBSCRIBERS = "subscribers"  # registry of the operator's numbers: plan, name, status, owner_since
# Provisioning decisions, _id "<msisdn>:<seq>" (the claim), with the lifecycle event (outbox).
SUBSCRIBER_CHANGES = "subscriber_changes"
# One per subscriber: a snapshot of the journal's state at some seq, written lazily by the ledger
# consumer (the journal is the truth: balance_state).
BALANCES = "balances"
# One decision per event that touched balances (credit, debit or refusal), _id = its business
# key; unique (msisdn, seq): the exactly-once claim and the ledger (see ledger.py).
JOURNAL = "journal"
CHARGES = "charges"  # usage and fees, for the charges history
TOPUPS = "topups"  # top-up history (projection of TopupRecorded), _id = topup id
BILLS = "bills"  # postpaid bills
PORTAL_ACCOUNTS = "portal_accounts"  # password logins over Wi-Fi
META = "meta"  # seed markers

_BY_SUBSCRIBER_NEWEST = [("msisdn", ASCENDING), ("at", DESCENDING)]

INDEXES = {
    SUBSCRIBERS: [],
    SUBSCRIBER_CHANGES: [IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending")],
    BALANCES: [],
    PORTAL_ACCOUNTS: [],
    META: [],
    JOURNAL: [
        IndexModel([("msisdn", ASCENDING), ("seq", ASCENDING)], name="decision_order", unique=True),
        IndexModel([("hour", ASCENDING)], name="by_hour"),  # the periodic audit's window
    ],
    CHARGES: [IndexModel(_BY_SUBSCRIBER_NEWEST, name="by_subscriber_newest")],
    TOPUPS: [IndexModel(_BY_SUBSCRIBER_NEWEST, name="by_subscriber_newest")],
    BILLS: [IndexModel([("msisdn", ASCENDING), ("period", DESCENDING)], name="by_subscriber_period")],
}
