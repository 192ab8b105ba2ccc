"""MongoDB: the shard key of every collection of every service (the capacity model's, see
deploy/helm/capacity.py and the chart README). tests/deploy/test_capacity.py checks there is one
for every collection a service's store.py declares, so a new collection needs its key here.
"""

from __future__ import annotations

# collection -> (shard key, why). "unsharded": small or global (catalogues, markers). A unique
# index must start with the shard key, and a claim by `_id` is unique only within a shard unless
# the same `_id` always lands on the same shard: so claims shard by `_id`, and subscriber data by
# the number, where every `_id` belongs to one number (topup:<id>, <msisdn>:<seq>).
SHARD_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "account": {
        "subscribers": ("{_id: hashed}", "_id = MSISDN: lookups by number"),
        "subscriber_changes": ("{_id: hashed}", "claims <msisdn>:<seq>"),
        "balances": ("{_id: hashed}", "one snapshot per number"),
        "journal": (
            "{msisdn: 1, seq: 1}",
            "the unique decision order (msisdn, seq) is the shard key; pre-split by number prefix",
        ),
        "charges": ("{msisdn: hashed}", "history by subscriber"),
        "topups": ("{msisdn: hashed}", "history by subscriber; _id (top-up id) belongs to one number"),
        "bills": ("{msisdn: hashed}", "bills by subscriber and period"),
        "portal_accounts": ("{_id: hashed}", "password login by number"),
        "meta": ("unsharded", "seed markers"),
    },
    "payment": {
        "payments": ("{_id: hashed}", "the provider's notification names the payment only"),
        "payment_finals": ("{_id: hashed}", "one outcome per payment: the claim is the _id"),
        "scratch_cards": ("{_id: hashed}", "by card"),
        "scratch_card_uses": ("{_id: hashed}", "one use per card: the claim is the _id"),
        "credits": ("{_id: hashed}", "by TopupRecorded id"),
        "bill_open_payments": ("{_id: hashed}", "one open payment per bill (claim)"),
        "bill_settlements": ("{_id: hashed}", "one settlement per bill (claim)"),
        "idempotency_keys": ("{_id: hashed}", "Idempotency-Key claims"),
    },
    "vas": {
        "subscriptions": ("{msisdn: hashed}", "read per subscriber; _id belongs to one number"),
        "consents": ("{msisdn: hashed}", "the consent log per subscriber; claims <sub>:<decision>"),
        "charges": ("{msisdn: hashed}", "per subscriber and month (the cap)"),
        "sends": ("{_id: hashed}", "one ticket per charge id (claim)"),
        "schedule": ("{_id: hashed}", "found by due minute (scatter-gather, once a minute)"),
        "inflight": ("{_id: hashed}", "a marker per use case"),
        "budget": ("{ref: 1}", "the unique one_per_cause index must lead with the shard key"),
        "holds": ("{_id: hashed}", "one per (subscriber, code): the claim is the _id"),
        "guards": ("{_id: hashed}", "per subscriber"),
        "tenancies": ("{_id: hashed}", "per number"),
        "runs": ("unsharded", "the renewal pass's watermark"),
        "catalog": ("unsharded", "the VAS catalogue"),
        "plans": ("unsharded", "the plans"),
        "idempotency_keys": ("{_id: hashed}", "Idempotency-Key claims"),
    },
    "loyalty": {
        "wallets": ("{_id: hashed}", "one per member"),
        "ledger": ("{member: 1, seq: 1}", "the unique chain (member, seq) is the shard key"),
        "redemptions": ("{member: hashed}", "per member"),
        "offers": ("unsharded", "partner offers"),
        "ecodes": ("{offer: 1, member: 1}", "a finite pool per offer"),
        "ecode_owners": ("{offer: 1, member: 1}", "the unique one_per_member index leads with it"),
        "ecode_claims": ("{_id: hashed}", "offer:member claims"),
        "card_requests": ("{_id: hashed}", "per request"),
        "meta": ("unsharded", "seed markers"),
    },
    "notify": {
        "devices": ("{_id: hashed}", "hash of the provider token; fan-out reads by bucket"),
        "preferences": ("{_id: hashed}", "per number"),
        "audience_billing": ("{_id: hashed}", "per number"),
        "audience_tiers": ("{_id: hashed}", "per number"),
        "audience_vas": ("{_id: hashed}", "msisdn:code"),
        "promotions": ("unsharded", "a few a day"),
        "fanout_claims": ("{_id: hashed}", "promotion:unit:generation claims"),
        "fanout_progress": ("{_id: hashed}", "checkpoints per unit"),
        "deferred_pushes": ("{_id: hashed}", "promotion:device"),
        "deferred_slots": ("{_id: hashed}", "promotion:slot"),
        "promotion_reads": ("{_id: hashed}", "msisdn:promotion"),
        "receipts": ("{_id: hashed}", "event id:device: one push per event and device"),
        "tenancies": ("{_id: hashed}", "per number"),
    },
    "stores": {
        "stores": ("unsharded", "the store catalogue (thousands)"),
        "catalogue": ("unsharded", "catalogue versions"),
        "feedback": ("{msisdn: hashed}", "tickets by subscriber"),
        "feedback_answers": ("{_id: hashed}", "one per ticket"),
        "tenancies": ("{_id: hashed}", "per number"),
    },
}
