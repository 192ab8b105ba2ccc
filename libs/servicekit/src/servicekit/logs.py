"""JSON logs, one object per line, carrying the request's or event's correlation id."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else passed via `extra=` is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_listener: logging.handlers.QueueListener | None = None


def configure_logging(service: str, level: str = "INFO") -> None:
    """Lines are formatted where they are logged (the correlation id is a context variable of
    that task) and written by a background thread: a write to stdout, flushed per line, would
    otherwise block the event loop on every request's access line."""
    global _listener
    if _listener is not None:
        _listener.stop()
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(lines)
    handler.setFormatter(JsonFormatter(service))
    _listener = logging.handlers.QueueListener(lines, logging.StreamHandler(sys.stdout))
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Request lines come from our own middleware (with route and correlation id).
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("aiokafka", "pymongo", "faststream.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
