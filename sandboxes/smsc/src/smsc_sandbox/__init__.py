"""Local SMS centre sandbox: an SMPP v3.4 server plus an HTTP API to read what it received."""

from .app import SmscSandbox
from .settings import SmscSettings
from .store import MessageRecord

__all__ = ["MessageRecord", "SmscSandbox", "SmscSettings"]
