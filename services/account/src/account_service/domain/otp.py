"""One-time login codes: how they are made, stored and compared.

Codes are never stored in clear: Redis keeps an HMAC of (number, code) under a server
secret, so a leaked Redis dump does not leak live codes. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class OtpPolicy:
    digits: int = 6
    ttl_seconds: int = 300
    max_wrong: int = 5  # wrong codes before the number is locked out
    lockout_seconds: int = 900
    resend_after_seconds: int = 30
    sends_per_window: int = 5  # per number
    sends_per_client_window: int = 20  # per client address
    send_window_seconds: int = 3600


def new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_digest(pepper: bytes, msisdn: str, code: str) -> str:
    return hmac.new(pepper, f"{msisdn}:{code}".encode(), hashlib.sha256).hexdigest()


def sms_text(code: str, ttl_seconds: int) -> str:
    minutes = max(1, ttl_seconds // 60)
    return f"Ma dang nhap My MobiFone cua ban la {code}. Ma co hieu luc {minutes} phut. Khong chia se ma nay."
