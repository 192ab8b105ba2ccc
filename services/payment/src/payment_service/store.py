"""The payment service's collections.

`payments` is written once, at creation; the final outcome of a payment is ONE insert into
`payment_finals` (a unique key per payment, so exactly one outcome can ever win) carrying
the events it implies in its outbox and what a status read shows, so no second write
mirrors it anywhere (a payment is open while it has no final record).
Scratch-card use is the same: one insert into `scratch_card_uses` per card, with its event.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from servicekit.idempotency import COLLECTION as IDEMPOTENCY_KEYS

PAYMENTS = "payments"
FINALS = "payment_finals"
SCRATCH_CARDS = "scratch_cards"
SCRATCH_USES = "scratch_card_uses"
CREDITS = "credits"  # top-ups the account service confirmed (BalanceChanged), by TopupRecorded id
# One open payment per bill: the bill's id claims it for one payment at a time (taken over only
# once that payment failed or expired). And one settlement per bill: the first success of a
# bill claims it; any other success of the same bill is money paid twice, credited to the
# payer's main balance instead (a TopupRecorded), never lost.
BILL_OPEN = "bill_open_payments"
BILL_SETTLEMENTS = "bill_settlements"

INDEXES = {
    IDEMPOTENCY_KEYS: [],
    SCRATCH_CARDS: [],
    CREDITS: [],
    BILL_OPEN: [],
    BILL_SETTLEMENTS: [],
    PAYMENTS: [
        IndexModel([("msisdn", ASCENDING), ("created_at", DESCENDING)], name="by_payer_newest"),
        # Reconciliation finds payments by the minute and hour they were created in.
        IndexModel([("created_minute", ASCENDING)], name="by_created_minute"),
        IndexModel([("created_hour", ASCENDING)], name="by_created_hour"),
    ],
    FINALS: [
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        IndexModel([("settled_minute", ASCENDING)], name="by_settled_minute"),
        IndexModel([("settled_hour", ASCENDING)], name="by_settled_hour"),
    ],
    SCRATCH_USES: [
        IndexModel([("outbox_pending", ASCENDING)], name="outbox_pending"),
        IndexModel([("used_minute", ASCENDING)], name="by_used_minute"),
        IndexModel([("used_hour", ASCENDING)], name="by_used_hour"),
    ],
}
