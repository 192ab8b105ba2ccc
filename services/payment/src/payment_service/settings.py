from __future__ import annotations

from pydantic import SecretStr

from servicekit.settings import KitSettings


class PaymentSettings(KitSettings):
    service_name: str = "payment-service"
    http_port: int = 8103

    # The payment provider (VNPay 2.1.0 protocol); the local sandbox plays it.
    provider_name: str = "vnpay"
    provider_tmn_code: str = "MYMOBI01"
    provider_hash_secret: SecretStr = SecretStr("sandbox-hash-secret-change-me")
    provider_pay_url: str = "http://127.0.0.1:8192/paymentv2/vpcpay.html"
    provider_api_url: str = "http://127.0.0.1:8192/merchant_webapi/api/transaction"
    public_base_url: str = "http://127.0.0.1:8080"  # where the browser returns (through the gateway)
    payment_ttl_minutes: int = 15
    notification_max_age_seconds: int = 900

    # Amount rules for card top-ups (VND).
    topup_min_vnd: int = 10_000
    topup_max_vnd: int = 5_000_000
    topup_step_vnd: int = 1_000

    # Scratch cards: PINs are stored as HMACs under this secret.
    scratch_pin_pepper: SecretStr = SecretStr("local-scratch-pepper-change-me")
    scratch_max_wrong: int = 5
    scratch_lockout_seconds: int = 1800

    # Reconciliation (reconcile.py), run by the service in one replica at a time.
    reconcile_interval_seconds: float = 60.0
    reconcile_credit_wait_seconds: int = 60  # a succeeded top-up not credited after this is re-sent
    reconcile_give_up_seconds: int = 3600  # still open / uncredited after this: unexplained (alert)
    reconcile_lookback_hours: int = 48

    # Bill lookups at the account service's internal API.
    account_internal_url: str = "http://127.0.0.1:8101"
