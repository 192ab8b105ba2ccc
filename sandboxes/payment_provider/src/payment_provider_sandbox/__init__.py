"""Local stand-in for the card payment provider (VNPay 2.1.0 style), for tests and the demo.

Plays the provider's side: hosted payment page with test cards, signed IPNs with retries, signed
return redirects, the querydr status API, and switches that make delivery misbehave on purpose.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
