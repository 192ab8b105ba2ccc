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
    sends_per_number: int = 10  # one number, from all clients but its known devices (SMS bombing)
    sends_per_client: int = 20  # one client (an address, an IPv6 /64, or a carrier subscriber)
    # One IPv6 /48 (a site: it holds 65,536 /64s, each a client of its own). No wider block
    # (/32) is counted: a whole provider's customers share one, and a stranger there could
    # spend it for all of them.
    sends_per_site: int = 60
    # A known device of the number (domain/devices.py): its own budget, nobody else's to spend.
    sends_per_device: int = 5
    # Charged by the sender, only for codes it really sends to a live subscriber (requests for
    # unassigned numbers spend neither): a block of 100,000 numbers (SMS pumping into one
    # range; known devices are not held by it), and the whole platform (the SMS bill's ceiling).
    sends_per_prefix: int = 500
    sends_overall: int = 50_000


@dataclass(frozen=True)
class GuessPolicy:
    """Failed logins (wrong codes, wrong passwords) are counted per (number, client) and per
    client, each with its own limit. Past a limit that key is locked, for longer each time
    (back-off), so a stranger guessing from one place locks only himself out.

    Wrong passwords are also counted per number (`per_number`, high: it only stops a guessing
    crowd, and keeps the owner out of password login only, never of codes or mobile data).
    Wrong codes are not: each code is bound to the client that asked for it and burnt after
    OtpPolicy.max_wrong misses, so guessing is already bounded by the codes a number can be
    sent, and a per-number lock would only be a lever for strangers to keep the owner out.
    A known device of the number has `per_device` tries of its own and no other scope."""

    window_seconds: int = 3600
    per_number_client: int = 5
    per_client: int = 20
    per_number: int = 50
    per_device: int = 5
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
