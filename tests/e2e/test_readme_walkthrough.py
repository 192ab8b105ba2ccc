"""The README's walk-through of the whole product (the block after `<!-- walkthrough -->`) runs
as written, line by line, against the running platform: a README that drifts from the API
fails here. It runs on a freshly provisioned number in place of the demo subscriber, so it
starts from nothing and can run any number of times."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import provision

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"
DEMO = "84901234567"


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```", text, re.S)
    assert found, "README.md has no ```sh block after <!-- walkthrough -->"
    return found.group(1)


def test_the_readme_walkthrough_is_a_block_of_the_product_steps_on_the_demo_subscriber() -> None:
    block = walkthrough()
    assert DEMO in block
    for step in ("header-login", "/me/balances", "/me/topups/card", "/me/loyalty", "/me/vas/", "/cancel",
                 "/internal/v1/promotions", "/me/promotions", "/stores/nearest", "/me/feedback"):  # fmt: skip
        assert step in block, f"the walk-through lost its {step} step"


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is installed by deploy/local/install.sh")
async def test_the_readme_walkthrough_runs_line_by_line_on_a_fresh_number(new_number: Any) -> None:
    number = new_number()
    await provision(number, name="Người Đọc README")
    script = walkthrough().replace(DEMO, number).replace("0" + DEMO[2:], "0" + number[2:])
    traced = (
        "set -euo pipefail\n"
        "trap 'echo \"walk-through failed at line $LINENO: $BASH_COMMAND\" >&2' ERR\n" + script
    )
    result = subprocess.run(
        ["bash", "-c", traced], capture_output=True, text=True, timeout=300, cwd=README.parent
    )
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n--- output ---\n{result.stdout[-3000:]}"
    assert '"00"' in result.stdout, "the provider sandbox approved the card"
    assert '"ticket": "GY-' in result.stdout, "a support ticket was filed"
