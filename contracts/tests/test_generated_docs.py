from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_event_docs_match_the_contracts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "servicekit.catalogue", "--check", "--out", str(ROOT / "docs")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
