"""JSON-lines logging. Nothing that reaches a log line carries card data: callers log the masked
number at most, and request logs carry the path without its query string."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

SERVICE = "payment-provider-sandbox"
# LogRecord's own attributes; anything else came in via `extra=` and becomes a field.
# uvicorn's color_message is an ANSI-coloured duplicate of msg.
_SKIP = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": SERVICE,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _SKIP and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", stream: TextIO = sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our middleware logs each request as JSON (path only); uvicorn's access line would not be JSON.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
