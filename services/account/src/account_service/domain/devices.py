"""Known devices: a phone that has logged in to a number carries a signed proof of it.

Every login answers with a `device_token`: the number, a device id and the number's session
generation, signed (HMAC) with a server secret. Presented with a later code request, code
check or password login of the same number, it gives that device budgets of its own, which
strangers cannot spend: they do not have it. It stops counting when the generation moves on
(a password change, or the number changing owner or status), so a recycled number's new owner
is never a known device of the previous owner's phone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

_VERSION = "d1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class DeviceProof:
    key: bytes

    @classmethod
    def from_pepper(cls, pepper: bytes) -> DeviceProof:
        return cls(hashlib.sha256(pepper + b"|known-device").digest())

    @staticmethod
    def new_device_id() -> str:
        return secrets.token_hex(12)

    def _signature(self, msisdn: str, device_id: str, generation: int) -> str:
        message = f"{_VERSION}.{msisdn}.{device_id}.{generation}".encode()
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())

    def issue(self, msisdn: str, device_id: str, generation: int) -> str:
        return f"{_VERSION}.{device_id}.{generation}.{self._signature(msisdn, device_id, generation)}"

    def device_of(self, token: str | None, msisdn: str, generation: int) -> str | None:
        """The device id a valid proof for this number and generation names, else None."""
        if not token:
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
            return None
        _, device_id, issued_generation, signature = parts
        if int(issued_generation) != generation:
            return None
        expected = self._signature(msisdn, device_id, generation)
        return device_id if hmac.compare_digest(expected, signature) else None
