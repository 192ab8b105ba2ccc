"""Typed errors. Callers map them to IPN answers (see `IpnAnswer.for_error`)."""

from __future__ import annotations


class VnpayError(Exception):
    """Base class for everything this package raises on purpose."""


class InvalidMessage(VnpayError):
    """A message from the provider (notification, return redirect, query answer) was refused."""


class BadSignature(InvalidMessage):
    """vnp_SecureHash is missing or does not match: the message was not signed with our secret."""


class Malformed(InvalidMessage):
    """The signature is fine but a field is missing, duplicated or unparseable."""


class Stale(InvalidMessage):
    """The signed vnp_NotifyTime lies outside the accepted window (a replay, or a skewed clock)."""


class QueryFailed(VnpayError):
    """The status query could not be answered: transport error, HTTP error, or a body that is not JSON."""
