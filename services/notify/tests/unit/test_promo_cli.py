from __future__ import annotations

import json
from pathlib import Path

import pytest

from notify_service.cli import main

EXAMPLE = Path(__file__).resolve().parents[4] / "contracts" / "examples" / "PromotionPublished" / "v1.json"


def test_the_recorded_example_validates_as_a_whole_event_or_as_its_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "campaign.json"
    data.write_text(json.dumps(json.loads(EXAMPLE.read_text())["data"]))
    assert main(["validate", str(EXAMPLE)]) == 0
    assert main(["validate", str(data)]) == 0
    assert "valid promotion tet-2027-data-x2" in capsys.readouterr().out


def test_a_broken_campaign_lists_each_problem_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(EXAMPLE.read_text())["data"]
    raw["promotion_id"] = "has spaces"
    raw["audience"] = {"everyone": True, "billing": "prepaid"}
    del raw["title"]["en"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "  promotion_id: String should match pattern" in err
    assert "  title.en: Field required" in err
    assert "  audience: audience: 'everyone' cannot be combined with other criteria" in err


def test_a_file_that_is_not_json_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"promotion_id": "x",\n  oops}')
    assert main(["validate", str(path)]) == 2
    assert "not JSON (line 2" in capsys.readouterr().err
