"""JSON logs on stdout, one object per line.

Fields passed with `extra=` become top-level keys. Message text never goes in: it carries OTP
codes, so the sandbox logs lengths and destinations only.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": "smsc-sandbox",
            "logger": record.name,
            "msg": record.getMessage(),  # same keys as servicekit.logs, for one log pipeline
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and key != "color_message":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per SMPP event is the point; per-PDU and per-HTTP-request lines are noise.
    logging.getLogger("mobi_smpp.connection").setLevel(max(root.level, logging.INFO))
    logging.getLogger("uvicorn.access").disabled = True
