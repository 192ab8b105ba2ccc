"""Each service as its dashboard shows it: the kit's rows it has (an outbox sweeper, events it
publishes) and a row of its own metrics. Its consumer group(s) come from mobi_contracts."""

from __future__ import annotations

from dataclasses import dataclass

from grafana import RARE, Panel, p99, q, rare_count, rate

from mobi_contracts import CONSUMER_GROUPS


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # account, payment, ...
    title: str
    outbox: bool  # runs an outbox sweeper (servicekit.outbox: outbox_* gauges)
    publishes: bool  # publishes events in normal operation (events_published_total)
    own: tuple[Panel, ...]  # its own metrics

    @property
    def label(self) -> str:
        return f'service="{self.name}-service"'

    @property
    def groups(self) -> list[str]:
        return sorted(g.name for g in CONSUMER_GROUPS if g.owner == f"{self.name}-service")


# OTP codes burnt and login keys locked (the account dashboard and the overview).
LOCKOUTS = (
    q(rare_count("otp_lockouts_total", "service"), "OTP codes burnt"),
    q(rare_count("auth_locks_total", "method, scope"), "{{method}} {{scope}}"),
)


# --- each service's own panels ------------------------------------------------------------

ACCOUNT = ServiceSpec(
    "account",
    "Account (login, balances, ledger)",
    outbox=False,
    publishes=True,
    own=(
        Panel(
            "Logins by method and result",
            (q(rate("auth_logins_total", "method, result"), "{{method}} {{result}}"),),
            "Login attempts per second (OTP, header enrichment, refresh) by result.",
            "reqps",
        ),
        Panel(
            "OTP sends and deliveries",
            (
                q(rate("otp_sent_total", "result"), "send {{result}}"),
                q(rate("otp_deliveries_total", "result"), "delivery {{result}}"),
            ),
            "OTP requests by result (sent, throttled, refused) and the SMS sender's deliveries.",
            "ops",
        ),
        Panel(
            "Lock-outs (last hour)",
            LOCKOUTS,
            "Codes burnt after too many wrong tries and login keys locked, per hour." + RARE,
            rare=True,
        ),
    ),
)
PAYMENT = ServiceSpec(
    "payment",
    "Payment (top-ups, bills, scratch cards)",
    outbox=True,
    publishes=True,
    own=(
        Panel(
            "Payments by kind and status",
            (q(rate("payments_total", "kind, status"), "{{kind}} {{status}}"),),
            "Payments started (pending) and their final statuses, per second.",
            "ops",
        ),
        Panel(
            "Payment success ratio",
            (
                q(
                    'sum by (kind) (rate(payments_total{status="succeeded"}[15m])) '
                    '/ sum by (kind) (rate(payments_total{status!="pending"}[15m]))',
                    "{{kind}}",
                ),
            ),
            "Share of final payments that succeeded, per kind, over 15 minutes.",
            "percentunit",
        ),
        Panel(
            "Provider notifications by result",
            (q(rate("payment_notifications_total", "result"), "{{result}}"),),
            "The provider's IPN calls by how they were handled (a bad signature or amount is refused).",
            "ops",
        ),
        Panel(
            "Reconciliation: last run",
            (q("max by (kind) (payment_reconcile_last_run)", "{{kind}}"),),
            "What the last reconciliation with the provider found, by kind; unexplained > 0 needs a person.",
        ),
        Panel(
            "Late successes and overpaid bills (last hour)",
            (
                q(rare_count("payment_late_successes_total", "replaced"), "late success over {{replaced}}"),
                q(rare_count("payment_bill_overpayments_total", "service"), "bill overpaid"),
            ),
            "Payments confirmed after another outcome, and bills paid twice (credited to the main balance)."
            + RARE,
            rare=True,
        ),
    ),
)
VAS = ServiceSpec(
    "vas",
    "VAS (subscriptions, packs, renewals)",
    outbox=True,
    publishes=True,
    own=(
        Panel(
            "Charges by kind and outcome",
            (q(rate("vas_charges_total", "kind, outcome"), "{{kind}} {{outcome}}"),),
            "VAS and data-pack charges asked of the account service, by outcome.",
            "ops",
        ),
        Panel(
            "Renewals by outcome",
            (q(rate("vas_renewals_total", "outcome", window="1h"), "{{outcome}}"),),
            "Renewal decisions per second over the last hour (renewed, expired, refused...).",
            "ops",
        ),
        Panel(
            "Use cases open",
            (q("sum by (service) (vas_use_cases_open)", "open"),),
            "Use cases under way or left half done (the completion pass finishes them).",
        ),
    ),
)
LOYALTY = ServiceSpec(
    "loyalty",
    "Loyalty (points, redemptions, transfers)",
    outbox=True,
    publishes=True,
    own=(
        Panel(
            "Points moved by kind",
            (q(rate("loyalty_points_total", "kind"), "{{kind}}"),),
            "Points moved by applied ledger entries per second (earn, transfer, redeem, reverse, expire).",
        ),
        Panel(
            "Redemptions by outcome",
            (q(rate("loyalty_redemptions_total", "outcome"), "{{outcome}}"),),
            "Redemptions requested and their answers from the granters.",
            "ops",
        ),
        Panel(
            "Transfers recovered (last hour)",
            (q(rare_count("loyalty_transfers_recovered_total", "instance"), "recovered"),),
            "Transfers whose credit the recovery pass applied after a crash." + RARE,
            rare=True,
        ),
    ),
)
NOTIFY = ServiceSpec(
    "notify",
    "Notify (push, campaigns)",
    outbox=False,
    publishes=False,
    own=(
        Panel(
            "Push sends by provider and outcome",
            (q(rate("push_sends_total", "provider, outcome"), "{{provider}} {{outcome}}"),),
            "Push requests answered by FCM and APNs: sent, unregistered, failed, retried.",
            "ops",
        ),
        Panel(
            "Push latency p99",
            (q(p99("push_send_seconds", "provider"), "{{provider}}"),),
            "99th percentile of one push request to the provider.",
            "s",
        ),
        Panel(
            "Transactional pushes",
            (q(rate("transactional_pushes_total", "kind, outcome"), "{{kind}} {{outcome}}"),),
            "Receipts and alerts pushed (top-up credited, low balance...), by outcome.",
            "ops",
        ),
        Panel(
            "Campaign devices by outcome",
            (q(rate("promotion_fanout_devices_total", "outcome"), "{{outcome}}"),),
            "Devices of promotion fan-outs: targeted, sent, failed, pruned, deferred, opted out.",
            "ops",
        ),
    ),
)
STORES = ServiceSpec(
    "stores",
    "Stores and support",
    outbox=True,
    publishes=True,
    own=(
        Panel(
            "Stores in the catalogue",
            (q("min by (instance) (stores_catalogue_stores)", "{{instance}}"),),
            "Stores in the catalogue version each instance serves (0: the map is empty).",
        ),
        Panel(
            "Catalogue imports and loads",
            (
                q(rate("stores_catalogue_imports_total", "result", window="1h"), "import {{result}}"),
                q(rate("stores_catalogue_loads_total", "source", window="1h"), "load from {{source}}"),
            ),
            "Catalogue imports by result and versions loaded into memory, per second over the last hour.",
            "ops",
        ),
        Panel(
            "Feedback submissions",
            (q(rate("feedback_submissions_total", "result", window="1h"), "{{result}}"),),
            "Subscriber feedback by result (accepted, rate limited, invalid).",
            "ops",
        ),
    ),
)
SERVICES = (ACCOUNT, PAYMENT, VAS, LOYALTY, NOTIFY, STORES)
