"""The merchant's JSON answer to an IPN. The provider stops retrying on RspCode 00 or 02."""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import BadSignature, InvalidMessage, Stale


class IpnAnswer(BaseModel):
    """{"RspCode": "..", "Message": ".."}: build with the class methods, send `to_json()`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    rsp_code: str = Field(alias="RspCode", pattern=r"^\d{2}$")
    message: str = Field(alias="Message", max_length=255)

    # Answers after which the provider considers the notification delivered.
    FINAL_CODES: ClassVar[frozenset[str]] = frozenset({"00", "02"})

    @classmethod
    def confirm_success(cls) -> IpnAnswer:
        """Recorded now (whether the payment succeeded or failed)."""
        return cls(rsp_code="00", message="Confirm Success")

    @classmethod
    def order_not_found(cls) -> IpnAnswer:
        return cls(rsp_code="01", message="Order not found")

    @classmethod
    def already_confirmed(cls) -> IpnAnswer:
        """The order already has a final result: a duplicate or a late contradicting notification."""
        return cls(rsp_code="02", message="Order already confirmed")

    @classmethod
    def invalid_amount(cls) -> IpnAnswer:
        return cls(rsp_code="04", message="Invalid amount")

    @classmethod
    def invalid_signature(cls) -> IpnAnswer:
        return cls(rsp_code="97", message="Invalid signature")

    @classmethod
    def unknown_error(cls, message: str = "Unknown error") -> IpnAnswer:
        return cls(rsp_code="99", message=message[:255])

    @classmethod
    def for_error(cls, error: InvalidMessage) -> IpnAnswer:
        """Answer for a refused message. A stale stamp fails authentication like a bad hash does."""
        if isinstance(error, BadSignature | Stale):
            return cls.invalid_signature()
        return cls.unknown_error("Invalid request")

    @property
    def is_final(self) -> bool:
        return self.rsp_code in self.FINAL_CODES

    def to_dict(self) -> dict[str, str]:
        return {"RspCode": self.rsp_code, "Message": self.message}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()
