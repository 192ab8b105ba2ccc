"""The stores service's collections.

`stores` holds catalogue versions side by side: each document holds up to 1 000 stores of one
version, packed, (`_id` "<version>/<chunk>"); the service reads a whole version at once and serves it
from memory (catalogue.py). `catalogue` holds one pointer document, `_id: "active"`,
naming the version readers serve. An import writes a whole new version, then moves the
pointer (one single-document write), then deletes every other version: readers see the old
catalogue or the new one, never a mix, and a failed import leaves the pointer alone.

`feedback` holds one document per ticket (`_id` the ticket number) with its replies and the
events not yet relayed (outbox in the same document). `feedback_answers` holds each answer's
claim (`_id` "<ticket>:<n>") with its event; `tenancies` each recycled number's boundary
(tickets filed before it are a previous owner's).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

STORES = "stores"
CATALOGUE = "catalogue"
FEEDBACK = "feedback"
ANSWERS = "feedback_answers"
TENANCIES = "tenancies"
ACTIVE = "active"

INDEXES = {
    CATALOGUE: [],
    STORES: [IndexModel([("version", ASCENDING)], name="by_version")],
    FEEDBACK: [
        IndexModel([("msisdn", ASCENDING), ("created_at", DESCENDING)], name="by_subscriber_newest"),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
    ],
    ANSWERS: [IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending")],
    TENANCIES: [],
}
