#!/usr/bin/env python3
"""Capacity model: My MobiFone for 10 million subscribers, from this platform's own figures.

    python deploy/helm/capacity.py            # the table (the chart README carries it)

Every per-replica rate below was measured by a benchmark of this repository (bench/, figures in
the closing notes of the sessions that ran them, on a shared 2-core machine with FerretDB as the
store: real MongoDB and dedicated cores are faster, so these are floors). The demand figures are
assumptions, named and kept in one place so an operator replaces them with the carrier's own.
The chart's defaults (topics.partitions, topics.retentionHours, every autoscaling.maxReplicas)
are this model's output; tests/deploy/test_capacity.py keeps the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- What one replica does (measured) ------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    rate: float  # per replica (one process: one core), per second
    unit: str
    source: str


MEASURED = {
    "ledger": Measured(
        300,
        "balance decisions/s (usage, top-ups, VAS charges)",
        "bench/ledger_usage.py: 300/s at 20,000 records over 5,000 subscribers, 526/s at 6,000/1,500",
    ),
    "consumer": Measured(
        716,
        "events/s through the kit's consumer with a store write",
        "bench/consumer_throughput.py: the kit 716/s, a bare aiokafka loop 718/s, both store-bound",
    ),
    "loyalty_earning": Measured(
        480,
        "top-ups/s turned into points",
        "bench/loyalty_earning.py: 481/s (798/s on a quieter machine)",
    ),
    "renewals": Measured(
        203,
        "VAS renewals/s (one pass)",
        "bench/vas_renewals.py: 100,000 due in 493 s, load average 9-11",
    ),
    "push": Measured(
        1310,
        "pushes/s of one promotion",
        "bench/notify_fanout.py: 1,000,000 devices in 763 s (a bare sender: 1,482/s)",
    ),
    "api": Measured(
        941,
        "requests/s (GET /api/v1/me/balances)",
        "bench/api_latency.py: 941/s direct, 887/s through nginx, 32 connections",
    ),
    "topups": Measured(
        97,
        "card top-ups credited/s end to end",
        "bench/payment_flow.py: 97-119/s at 50 concurrent (p99 302-354 ms)",
    ),
}

# --- The operator at its peak (assumptions) --------------------------------------------------------

SUBSCRIBERS = 10_000_000
APP_SHARE = 0.6  # subscribers with the app (and a push device)
SECONDS_PER_HOUR = 3600

# Rated usage from the charging mediation: interim records per subscriber in the busy hour
# (a data session reports every ~25 minutes, calls and SMS once each), and the busy minute above
# the busy hour's average.
USAGE_RECORDS_PER_SUBSCRIBER_BUSY_HOUR = 2.4
BUSY_MINUTE_FACTOR = 1.5
# Top-ups: per subscriber and month, the share of a month on its busiest day (a double-credit
# promotion, pay day), of that day in its busiest hour, and the burst when a promotion starts.
TOPUPS_PER_SUBSCRIBER_MONTH = 4
TOPUP_PEAK_DAY_SHARE = 0.05
TOPUP_BUSY_HOUR_SHARE = 0.12
TOPUP_BURST = 3
# VAS renewals fall due on the 1st of the month, 00:00 Vietnam time: subscribers with a
# renewing VAS, renewed within a window that ends before the morning.
VAS_SUBSCRIBER_SHARE = 0.3
RENEWAL_WINDOW_HOURS = 4
# A promotion to every device, delivered within this many minutes.
PROMOTION_MINUTES = 30
# App traffic: app users active in the busy hour, and their requests each.
APP_ACTIVE_BUSY_HOUR = 0.15
REQUESTS_PER_ACTIVE_USER = 12
# The busy hour's average over the day's (for volumes: disk, inbox).
PEAK_TO_AVERAGE = 3

# --- Sizing rules ------------------------------------------------------------------------------------

TARGET_UTILISATION = 0.7  # the HPA's CPU target: replicas run at 70 % at the peak
HPA_HEADROOM = 1.25  # the HPA may go this far above the peak's replicas
MIN_REPLICAS = 2  # availability: one replica may always be down (PDB maxUnavailable 1)
MEMBERS_PER_REPLICA = 3  # servicekit CONSUMER_INSTANCES: group members in one process
BROKERS = 6
REPLICATION_FACTOR = 3
PARTITION_HEADROOM = 1.5  # growth without adding partitions (which re-maps every key)
RETENTION_HOURS = 7 * 24  # the contracts' default: a week to replay after an incident

# Bytes of one event on disk: the contract example's JSON, plus key, headers and batch overhead.
EVENT_BYTES = {
    "UsageRecorded": 395,
    "BalanceChanged": 539,
    "TopupRecorded": 444,
    "PaymentSucceeded": 504,
    "VasChargeRequested": 709,
    "VasRenewed": 398,
    "PointsEarned": 455,
}
RECORD_OVERHEAD_BYTES = 150


def peak_rates() -> dict[str, float]:
    """Events (or requests) per second at the peak, by kind."""
    usage = SUBSCRIBERS * USAGE_RECORDS_PER_SUBSCRIBER_BUSY_HOUR / SECONDS_PER_HOUR * BUSY_MINUTE_FACTOR
    topups = (
        SUBSCRIBERS
        * TOPUPS_PER_SUBSCRIBER_MONTH
        * TOPUP_PEAK_DAY_SHARE
        * TOPUP_BUSY_HOUR_SHARE
        / SECONDS_PER_HOUR
        * TOPUP_BURST
    )
    renewals = SUBSCRIBERS * VAS_SUBSCRIBER_SHARE / (RENEWAL_WINDOW_HOURS * SECONDS_PER_HOUR)
    pushes = SUBSCRIBERS * APP_SHARE / (PROMOTION_MINUTES * 60)
    api = (
        SUBSCRIBERS * APP_SHARE * APP_ACTIVE_BUSY_HOUR * REQUESTS_PER_ACTIVE_USER / SECONDS_PER_HOUR * 2
    )  # x2: the busy minute
    # Every usage record, top-up and VAS charge is one ledger decision and one BalanceChanged.
    # The worst case: a promotion's top-ups during the renewals of the 1st, in the busy hour.
    decisions = usage + topups + renewals
    return {
        "usage": usage,
        "topups": topups,
        "renewals": renewals,
        "pushes": pushes,
        "api": api,
        "decisions": decisions,
    }


def replicas_for(rate: float, per_replica: float) -> int:
    return max(MIN_REPLICAS, math.ceil(rate / (per_replica * TARGET_UTILISATION)))


@dataclass(frozen=True)
class Group:
    service: str
    reads: str  # what drives it at the peak
    rate: float
    per_replica: Measured

    @property
    def replicas(self) -> int:
        return replicas_for(self.rate, self.per_replica.rate)


def groups() -> list[Group]:
    """Each service's load at the peak: its consumer group, or what else bounds it (notify's
    fan-out, the stores' API)."""
    r = peak_rates()
    return [
        # The ledger: every usage record, top-up and VAS charge (co-partitioned topics).
        Group("account", "usage + top-ups + VAS charges (ledger)", r["decisions"], MEASURED["ledger"]),
        # Every group reading account.events.v1 sees every BalanceChanged, one per decision.
        Group("payment", "account.events.v1 (every BalanceChanged)", r["decisions"], MEASURED["consumer"]),
        Group("vas", "account.events.v1 (every BalanceChanged)", r["decisions"], MEASURED["consumer"]),
        Group("notify", "account.events.v1 (every BalanceChanged)", r["decisions"], MEASURED["consumer"]),
        Group("loyalty", "top-ups to earn on", r["topups"], MEASURED["loyalty_earning"]),
        # Lifecycle events only, and nearest-store reads (the API share below decides).
        Group("stores", "app requests (a tenth of them)", r["api"] / 10, MEASURED["api"]),
    ]


def promotion_replicas() -> int:
    """Notify replicas that deliver a promotion to every device in PROMOTION_MINUTES (they share
    the campaign's units): the HPA bound of notify is the larger of this and its group's."""
    return replicas_for(peak_rates()["pushes"], MEASURED["push"].rate)


def api_replicas() -> int:
    """Account replicas for the app's reads (half the API traffic: balances, me, charges)."""
    return replicas_for(peak_rates()["api"] / 2, MEASURED["api"].rate)


def peak_replicas() -> dict[str, int]:
    replicas = {g.service: g.replicas for g in groups()}
    replicas["notify"] = max(replicas["notify"], promotion_replicas())
    replicas["account"] = max(replicas["account"], api_replicas())
    return replicas


def partitions() -> int:
    """One partition count for every event topic (a group's topics are co-partitioned): each
    member of the largest group at its peak gets a partition, with room to grow, in whole
    rounds of brokers (leaders spread evenly)."""
    members = max(peak_replicas().values()) * MEMBERS_PER_REPLICA
    needed = math.ceil(members * PARTITION_HEADROOM)
    return math.ceil(needed / BROKERS) * BROKERS


def hpa_max_replicas() -> dict[str, int]:
    """The HPA's bound per service: room above the peak, never more replicas than the partitions
    can give a member each (more would sit idle)."""
    ceiling = partitions() // MEMBERS_PER_REPLICA
    return {
        service: max(MIN_REPLICAS, min(ceiling, math.ceil(replicas * HPA_HEADROOM)))
        for service, replicas in peak_replicas().items()
    }


def gateway_max_replicas() -> int:
    """nginx at two cores a replica; its measured rate (bound by the service behind it) is a
    floor for what one core proxies."""
    per_replica = MEASURED["api"].rate * 2
    return math.ceil(replicas_for(peak_rates()["api"], per_replica) * HPA_HEADROOM)


# --- Kafka: volume and disk ----------------------------------------------------------------------


def topic_rates() -> dict[str, tuple[float, int]]:
    """Peak events/s and bytes per event of each busy topic."""
    r = peak_rates()

    def size(*events: str) -> int:
        return round(sum(EVENT_BYTES[e] for e in events) / len(events)) + RECORD_OVERHEAD_BYTES

    return {
        "network.usage.v1": (r["usage"], size("UsageRecorded")),
        "account.events.v1": (r["decisions"], size("BalanceChanged")),
        "payment.events.v1": (r["topups"] * 2, size("PaymentSucceeded", "TopupRecorded")),
        "vas.events.v1": (r["renewals"] * 2, size("VasChargeRequested", "VasRenewed")),
        "loyalty.events.v1": (r["topups"], size("PointsEarned")),
    }


def disk_per_broker_gb() -> float:
    """Bytes kept for RETENTION_HOURS at the day's average rate, times the replicas, spread over
    the brokers."""
    seconds = RETENTION_HOURS * SECONDS_PER_HOUR
    total = sum(rate / PEAK_TO_AVERAGE * size * seconds for rate, size in topic_rates().values())
    return total * REPLICATION_FACTOR / BROKERS / 1e9


# --- Redis ---------------------------------------------------------------------------------------

# Per subscriber with the app: a session and a refresh token (~300 B each with Redis's
# overhead), the balance read cache (~1 KB, kept 6 h: BALANCE_CACHE_TTL_SECONDS), OTP budgets
# while logging in (transient). Per event applied: its id in its group's inbox set
# (`inbox:<group>:<day>`, ~90 B a member), kept INBOX_TTL_SECONDS (2 days) plus the day bucket.
SESSION_BYTES = 600
BALANCE_CACHE_BYTES = 1000
INBOX_ID_BYTES = 90
INBOX_DAYS = 3  # 2 days' TTL, bucketed by day: up to three sets live


def redis_gb() -> dict[str, float]:
    subscribers_with_app = SUBSCRIBERS * APP_SHARE
    per_subscriber = subscribers_with_app * (SESSION_BYTES + BALANCE_CACHE_BYTES) / 1e9
    r = peak_rates()
    # Ids remembered per day: the ledger's decisions, and each of the three groups that handle
    # every BalanceChanged (payment, vas, notify), at the day's average rate.
    ids_per_day = r["decisions"] / PEAK_TO_AVERAGE * 86_400 * 4
    inbox = ids_per_day * INBOX_DAYS * INBOX_ID_BYTES / 1e9
    return {"per_subscriber_gb": per_subscriber, "inbox_gb": inbox, "total_gb": per_subscriber + inbox}


# --- The table -------------------------------------------------------------------------------------


def report() -> str:
    r = peak_rates()
    lines = [
        f"My MobiFone at {SUBSCRIBERS:,} subscribers, busy hour (assumptions: deploy/helm/capacity.py)",
        "",
    ]
    lines.append("Peak load")
    lines += [
        f"  usage records        {r['usage']:>9,.0f}/s",
        f"  top-ups              {r['topups']:>9,.0f}/s",
        f"  VAS renewals (1st)   {r['renewals']:>9,.0f}/s",
        f"  ledger decisions     {r['decisions']:>9,.0f}/s",
        f"  promotion pushes     {r['pushes']:>9,.0f}/s",
        f"  app API requests     {r['api']:>9,.0f}/s",
        "",
        "Replicas (one core each) at the peak, and the HPA's maxReplicas",
    ]
    hpa = hpa_max_replicas()
    replicas = peak_replicas()
    for g in groups():
        lines.append(
            f"  {g.service:<8} {replicas[g.service]:>4} peak {hpa[g.service]:>4} max   "
            f"{g.rate:>8,.0f}/s {g.reads}; {g.per_replica.rate:,.0f} {g.per_replica.unit} per replica"
        )
    lines += [
        f"  gateway  {gateway_max_replicas():>4} max (2 cores a replica)",
        "",
        f"Kafka: {partitions()} partitions on every event topic ({MEMBERS_PER_REPLICA} members a replica, "
        f"x{PARTITION_HEADROOM} headroom, {BROKERS} brokers), RF {REPLICATION_FACTOR}, "
        f"retention {RETENTION_HOURS} h",
    ]
    for topic, (rate, size) in topic_rates().items():
        lines.append(f"  {topic:<20} {rate:>8,.0f}/s peak  {size} B/event")
    lines.append(f"  disk per broker      {disk_per_broker_gb():,.0f} GB (day-average rate, x RF, / brokers)")
    redis = redis_gb()
    lines += [
        "",
        f"Redis: {redis['per_subscriber_gb']:,.1f} GB sessions and balance cache "
        f"({SESSION_BYTES + BALANCE_CACHE_BYTES} B per app user), {redis['inbox_gb']:,.0f} GB consumer "
        f"inboxes ({INBOX_ID_BYTES} B per event id, {INBOX_DAYS} days): {redis['total_gb']:,.0f} GB",
        "",
        "Measured (per replica)",
    ]
    lines += [f"  {name:<16} {m.rate:>6,.0f} {m.unit}: {m.source}" for name, m in MEASURED.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
