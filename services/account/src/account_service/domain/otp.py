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
    max_wrong: int = 5  # wrong codes before the code is burnt (a new one must be asked for)
    resend_after_seconds: int = 30
    send_window_seconds: int = 3600
    # Sends per window. Only sends that are allowed count, and the client's own limit is
    # checked first, so a client over its limit cannot use up anyone's budget.
    sends_per_number_client: int = 5  # one number asked from one client
    sends_per_number: int = 10  # one number, from all clients (SMS bombing)
    sends_per_client: int = 20  # one client (an address, an IPv6 /64, or a carrier subscriber)
    sends_per_prefix: int = 500  # a block of 100,000 numbers (SMS pumping into one range)
    sends_overall: int = 50_000  # the whole platform: the SMS bill has a ceiling


@dataclass(frozen=True)
class GuessPolicy:
    """Failed logins (wrong codes, wrong passwords) are counted per (number, client), per
    client and per number, each with its own limit. Past a limit that key is locked, for
    longer each time (back-off), so a stranger guessing from one place locks only himself
    out; the per-number limit is high and only stops a guessing crowd."""

    window_seconds: int = 3600
    per_number_client: int = 5
    per_client: int = 20
    per_number: int = 50
    lock_base_seconds: int = 60
    lock_max_seconds: int = 3600
    strikes_remembered_seconds: int = 24 * 3600


def number_prefix(msisdn: str) -> str:
    """The block a number belongs to for the per-prefix SMS budget (84 + 4 digits)."""
    return msisdn[:6]


def new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_digest(pepper: bytes, msisdn: str, code: str) -> str:
    return hmac.new(pepper, f"{msisdn}:{code}".encode(), hashlib.sha256).hexdigest()


def sms_text(code: str, ttl_seconds: int) -> str:
    minutes = max(1, ttl_seconds // 60)
    return f"Ma dang nhap My MobiFone cua ban la {code}. Ma co hieu luc {minutes} phut. Khong chia se ma nay."
