"""Protocol constants: payment response codes, transaction statuses, query answers, bank codes."""

from __future__ import annotations

from enum import StrEnum

VERSION = "2.1.0"
CURRENCY = "VND"
MIN_AMOUNT_VND = 5_000  # VNPay accepts 5,000 đ up to (but excluding) 1 billion đ per payment
MAX_AMOUNT_VND = 999_999_999


class ResponseCode(StrEnum):
    """vnp_ResponseCode of a payment (return redirect and IPN)."""

    SUCCESS = "00"
    SUSPECTED_FRAUD = "07"  # money taken but held: the merchant must confirm or refuse it manually
    NOT_REGISTERED_FOR_INTERNET_BANKING = "09"
    AUTHENTICATION_FAILED = "10"
    PAYMENT_EXPIRED = "11"
    CARD_LOCKED = "12"
    WRONG_OTP = "13"
    CUSTOMER_CANCELLED = "24"
    INSUFFICIENT_FUNDS = "51"
    DAILY_LIMIT_EXCEEDED = "65"
    BANK_MAINTENANCE = "75"
    TOO_MANY_WRONG_PASSWORDS = "79"
    OTHER_ERROR = "99"


RESPONSE_MESSAGES: dict[str, str] = {
    ResponseCode.SUCCESS: "Transaction successful",
    ResponseCode.SUSPECTED_FRAUD: "Money deducted; transaction suspected of fraud",
    ResponseCode.NOT_REGISTERED_FOR_INTERNET_BANKING: "Card or account not registered for Internet Banking",
    ResponseCode.AUTHENTICATION_FAILED: "Card or account verification failed more than 3 times",
    ResponseCode.PAYMENT_EXPIRED: "Payment window expired",
    ResponseCode.CARD_LOCKED: "Card or account is locked",
    ResponseCode.WRONG_OTP: "Wrong OTP",
    ResponseCode.CUSTOMER_CANCELLED: "Customer cancelled the transaction",
    ResponseCode.INSUFFICIENT_FUNDS: "Insufficient funds",
    ResponseCode.DAILY_LIMIT_EXCEEDED: "Daily transaction limit exceeded",
    ResponseCode.BANK_MAINTENANCE: "Bank under maintenance",
    ResponseCode.TOO_MANY_WRONG_PASSWORDS: "Too many wrong payment passwords",
    ResponseCode.OTHER_ERROR: "Other error",
}


def describe_response(code: str) -> str:
    return RESPONSE_MESSAGES.get(code, f"Unknown response code {code}")


class TransactionStatus(StrEnum):
    """vnp_TransactionStatus: the provider's status of the transaction (IPN, return, querydr)."""

    SUCCESS = "00"
    PENDING = "01"  # not completed yet (customer still on the payment page, or abandoned it)
    FAILED = "02"
    REVERSED = "04"
    REFUND_PROCESSING = "05"
    REFUND_SENT_TO_BANK = "06"
    SUSPECTED_FRAUD = "07"
    REFUND_REJECTED = "09"


class QueryResponseCode(StrEnum):
    """vnp_ResponseCode of the querydr API (whether the *query* worked, not the payment)."""

    SUCCESS = "00"
    INVALID_MERCHANT = "02"
    MALFORMED_REQUEST = "03"
    TRANSACTION_NOT_FOUND = "91"
    DUPLICATE_REQUEST = "94"
    INVALID_CHECKSUM = "97"
    OTHER_ERROR = "99"


class BankCode(StrEnum):
    """vnp_BankCode values that pick a payment method instead of a bank."""

    INTERNATIONAL_CARD = "INTCARD"
    DOMESTIC_CARD = "VNBANK"
    VNPAY_QR = "VNPAYQR"


class OrderType(StrEnum):
    """vnp_OrderType categories the self-care app uses (VNPay's product category codes)."""

    TOPUP = "topup"
    BILL_PAYMENT = "billpayment"
    OTHER = "other"
