"""The loyalty service's own metrics (the kit's are in servicekit.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

POINTS = Counter(
    "loyalty_points_total",
    "Points moved by applied ledger entries, by kind (earn, transfer_out, transfer_in, redeem, "
    "reverse, expire); replays are not counted",
    ["kind"],
)
REDEMPTIONS = Counter(
    "loyalty_redemptions_total", "Redemptions by outcome: requested, granted, refused", ["outcome"]
)
TRANSFERS_RECOVERED = Counter(
    "loyalty_transfers_recovered_total", "Transfers whose credit the recovery pass applied after a crash"
)
JOB_CHANGES = Counter("loyalty_job_changes_total", "Changes made by the scheduled loyalty job", ["kind"])
SNAPSHOTS = Counter(
    "loyalty_wallet_snapshots_total",
    "Wallet snapshots written (the ledger is the truth; a snapshot saves readers its tail)",
)
