"""Adapter to the payment provider (VNPay 2.1.0 protocol, see libs/vnpay)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import vnpay

from .domain.rules import ProviderResult
from .settings import PaymentSettings

RETURN_PATH = "/api/v1/payments/provider/return"


class Provider:
    def __init__(self, settings: PaymentSettings) -> None:
        self.name = settings.provider_name
        self.config = vnpay.GatewayConfig(
            tmn_code=settings.provider_tmn_code,
            hash_secret=settings.provider_hash_secret,
            pay_url=settings.provider_pay_url,
            return_url=settings.public_base_url.rstrip("/") + RETURN_PATH,
            api_url=settings.provider_api_url,
        )
        self.max_age = timedelta(seconds=settings.notification_max_age_seconds)
        self._query: vnpay.QueryClient | None = None

    def payment_url(
        self,
        *,
        txn_ref: str,
        amount_vnd: int,
        order_info: str,
        kind: str,
        method: str,
        client_ip: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> str:
        order = vnpay.PaymentOrder(
            txn_ref=txn_ref,
            amount_vnd=amount_vnd,
            order_info=order_info,
            order_type=vnpay.OrderType.TOPUP if kind == "topup" else vnpay.OrderType.BILL_PAYMENT,
            locale="vn",
            client_ip=client_ip,
            bank_code=vnpay.BankCode.INTERNATIONAL_CARD
            if method == "card_international"
            else vnpay.BankCode.DOMESTIC_CARD,
            created_at=created_at,
            expires_at=expires_at,
        )
        return vnpay.build_payment_url(self.config, order)

    def read_notification(self, params: Mapping[str, str], now: datetime) -> vnpay.Notification:
        """Raises vnpay.InvalidMessage (BadSignature, Malformed, Stale)."""
        return vnpay.parse_notification(
            params, self.config.secret, now=now, max_age=self.max_age, tmn_code=self.config.tmn_code
        )

    def read_return(self, params: Mapping[str, str]) -> vnpay.Notification:
        return vnpay.parse_return(params, self.config.secret, tmn_code=self.config.tmn_code)

    async def query(
        self, *, txn_ref: str, created_at: datetime, order_info: str, now: datetime
    ) -> ProviderResult | None:
        """The provider's view of a transaction; None when it does not know it."""
        if self._query is None:
            self._query = vnpay.QueryClient(self.config)
        result = await self._query.query(
            txn_ref=txn_ref, transaction_date=created_at, order_info=order_info, ip_addr="127.0.0.1", now=now
        )
        if not result.found:
            return None
        status = result.transaction_status or "99"
        return ProviderResult(
            amount_vnd=result.amount_vnd or 0,
            # querydr reports the transaction's status, not a payment response code.
            response_code="00" if status == "00" else status,
            transaction_status=status,
            transaction_no=result.transaction_no,
            bank_code=result.bank_code,
        )


def result_of(notification: vnpay.Notification) -> ProviderResult:
    return ProviderResult(
        amount_vnd=notification.amount_vnd,
        response_code=notification.response_code,
        transaction_status=notification.transaction_status,
        transaction_no=notification.transaction_no,
        bank_code=notification.bank_code,
        card_type=notification.card_type,
    )
