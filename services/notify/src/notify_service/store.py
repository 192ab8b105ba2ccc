"""The notify service's collections.

Nothing is written per (promotion, subscriber): the inbox is the active promotions resolved
at read time against the subscriber's attributes. A campaign's fan-out writes per *unit*
(a bucket of devices, or the devices deferred to one quiet-hours end): one claim insert and
one progress insert per chunk of devices, never one write per device.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel

DEVICES = "devices"  # _id: hash of the provider token; msisdn, bucket, platform, token, locale
PREFERENCES = "preferences"  # _id: msisdn; bucket, marketing_opt_out, quiet hours, language
# Audience projections, one collection per source topic (one writer per document).
BILLING = "audience_billing"  # _id: msisdn; billing (PlanChanged)
TIERS = "audience_tiers"  # _id: msisdn; tier (MemberEnrolled, TierChanged)
VAS = "audience_vas"  # _id: msisdn:code; msisdn, code (VasSubscribed / VasCancelled)
PROMOTIONS = "promotions"  # _id: promotion id; the event's data, state
CLAIMS = "fanout_claims"  # _id: promotion:unit:generation; owner
PROGRESS = "fanout_progress"  # _id: promotion:unit:last device id; counts, final
DEFERRED = "deferred_pushes"  # _id: promotion:device; slot (quiet hours end), the push
DEFERRED_SLOTS = "deferred_slots"  # _id: promotion:slot; due_at, state
READS = "promotion_reads"  # _id: msisdn:promotion
RECEIPTS = "receipts"  # _id: event id:device id (transactional pushes sent)
TENANCIES = "tenancies"  # _id: msisdn; owner_since: devices and preferences before it are gone

INDEXES = {
    DEVICES: [
        IndexModel([("msisdn", ASCENDING)], name="by_msisdn"),
        IndexModel([("bucket", ASCENDING)], name="by_bucket"),
    ],
    PREFERENCES: [IndexModel([("bucket", ASCENDING)], name="by_bucket")],
    BILLING: [IndexModel([("bucket", ASCENDING)], name="by_bucket")],
    TIERS: [IndexModel([("bucket", ASCENDING)], name="by_bucket")],
    VAS: [
        IndexModel([("bucket", ASCENDING)], name="by_bucket"),
        IndexModel([("msisdn", ASCENDING)], name="by_msisdn"),
    ],
    PROMOTIONS: [
        IndexModel([("listed", ASCENDING)], name="by_listed"),
        IndexModel([("fanout", ASCENDING)], name="by_fanout"),
    ],
    CLAIMS: [IndexModel([("promotion", ASCENDING)], name="by_promotion")],
    PROGRESS: [IndexModel([("promotion", ASCENDING)], name="by_promotion")],
    DEFERRED: [IndexModel([("slot_key", ASCENDING)], name="by_slot_key")],
    DEFERRED_SLOTS: [IndexModel([("state", ASCENDING)], name="by_state")],
    READS: [IndexModel([("msisdn", ASCENDING)], name="by_msisdn")],
    RECEIPTS: [IndexModel([("event_id", ASCENDING)], name="by_event")],
    TENANCIES: [IndexModel([("bucket", ASCENDING)], name="by_bucket")],
}
