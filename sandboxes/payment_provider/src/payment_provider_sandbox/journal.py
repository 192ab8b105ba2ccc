"""Optional JSON-lines journal: one object per line, appended as things happen."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, payload: dict[str, Any]) -> None:
        if self._path is None:
            return
        line = json.dumps({"ts": datetime.now(UTC).isoformat(), "event": event, **payload}, default=str)
        # Small appends to a local file: cheaper than handing them to a thread.
        with self._path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
