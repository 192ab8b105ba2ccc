"""HMAC-SHA512 signatures over the canonical query string, exactly as VNPay 2.1.0 builds it.

Canonical form: the `vnp_*` parameters minus vnp_SecureHash / vnp_SecureHashType, empty values
dropped, sorted by key, each `key=quote_plus(value)`, joined with `&`. Parameters without the
`vnp_` prefix are not signed: a merchant's return URL may carry its own query parameters, and
VNPay's reference code ignores them too, so readers must never trust a non-`vnp_` field.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote_plus

FIELD_PREFIX = "vnp_"
SECURE_HASH = "vnp_SecureHash"
SECURE_HASH_TYPE = "vnp_SecureHashType"
_UNSIGNED = frozenset({SECURE_HASH, SECURE_HASH_TYPE})


def signed_items(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (key, value) pairs that the signature covers, in signing order."""
    return sorted(
        (key, value)
        for key, value in params.items()
        if key.startswith(FIELD_PREFIX) and key not in _UNSIGNED and value != ""
    )


def canonical_query(params: Mapping[str, str]) -> str:
    """The string that is signed; also the query string of a payment URL."""
    return "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in signed_items(params))


def hmac_sha512(secret: str, data: str) -> str:
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


def sign(params: Mapping[str, str], secret: str) -> str:
    """vnp_SecureHash for these parameters (lower-case hex)."""
    return hmac_sha512(secret, canonical_query(params))


def verify(params: Mapping[str, str], secret: str) -> bool:
    """True when vnp_SecureHash matches. Constant-time; hex case is ignored (VNPay samples differ)."""
    return _matches(params.get(SECURE_HASH, ""), lambda: sign(params, secret))


def with_signature(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """A copy of the non-empty parameters plus their vnp_SecureHash, ready to send."""
    signed = {key: value for key, value in params.items() if value != "" and key not in _UNSIGNED}
    signed[SECURE_HASH] = sign(signed, secret)
    return signed


def sign_pipe(values: Iterable[str | None], secret: str) -> str:
    """Signature of the JSON APIs (querydr, refund): fields joined by `|`, absent ones empty."""
    return hmac_sha512(secret, "|".join("" if value is None else str(value) for value in values))


def verify_pipe(values: Iterable[str | None], received: str, secret: str) -> bool:
    return _matches(received, lambda: sign_pipe(values, secret))


def _matches(received: str, expected: Callable[[], str]) -> bool:
    """Constant-time comparison of a received hex hash; `expected` is only computed when one was sent."""
    if not received:
        return False
    return hmac.compare_digest(received.strip().lower().encode(), expected().encode())
