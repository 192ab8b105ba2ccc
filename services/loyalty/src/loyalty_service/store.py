"""The loyalty service's collections and their indexes (created at start-up).

Points are a chain per member: `ledger` holds one entry per change, `_id` = the change's
business key (so a cause counts once), a unique (member, seq) (so two changes can never be
decided on the same state: the loser reads again) and the state after it: the ledger is the
truth. `wallets` holds each member's enrolment facts and a snapshot of the state after some
entry, written lazily (ledger.py): a reader adds the state of the ledger's last entry beyond it.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

WALLETS = "wallets"  # one per member: enrolment facts and a snapshot of the state after entry `seq`
LEDGER = "ledger"  # one entry per change of points (earn, transfer, redeem, reverse, expire, tier)
REDEMPTIONS = "redemptions"  # status of each redemption (pending, granted, refused)
OFFERS = "offers"  # partner offers
ECODES = "ecodes"  # each offer's finite pool of codes; `member` set once one is handed out
ECODE_OWNERS = "ecode_owners"  # _id = code, unique (offer, member): hands a code to one member
ECODE_CLAIMS = "ecode_claims"  # _id = offer:member: one code per member and offer, with its event
CARD_REQUESTS = "card_requests"  # physical member card requests
META = "meta"  # seed markers

INDEXES = {
    WALLETS: [IndexModel([("next_expiry", ASCENDING)], name="by_next_expiry")],
    LEDGER: [
        IndexModel([("member", ASCENDING), ("seq", ASCENDING)], name="chain", unique=True),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        IndexModel([("counterpart_pending", ASCENDING)], name="counterpart_pending"),
    ],
    REDEMPTIONS: [IndexModel([("member", ASCENDING), ("at", ASCENDING)], name="by_member")],
    OFFERS: [],
    ECODES: [IndexModel([("offer", ASCENDING), ("member", ASCENDING)], name="free_by_offer")],
    ECODE_OWNERS: [
        IndexModel([("offer", ASCENDING), ("member", ASCENDING)], name="one_per_member", unique=True)
    ],
    ECODE_CLAIMS: [
        IndexModel([("member", ASCENDING), ("at", ASCENDING)], name="by_member"),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
    ],
    CARD_REQUESTS: [
        IndexModel([("member", ASCENDING), ("at", ASCENDING)], name="by_member"),
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
    ],
    META: [],
}
