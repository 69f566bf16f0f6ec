"""The examples run as written (at a small size)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_study_own_model_runs_to_a_full_report(tmp_path: Path) -> None:
    example = runpy.run_path(str(ROOT / "examples" / "study_own_model.py"), run_name="example")
    example["main"](tmp_path / "run", seeds=2, folds=2, epochs=1, workers=2)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [a["name"] for a in summary["arms"]] == [
        "no noise",
        "input",
        "blocks[std=0.03]",
        "blocks[std=0.1]",
        "blocks[std=0.3]",
        "weights",
    ]
    assert all(a["n"] == 2 for a in summary["arms"])
    assert (tmp_path / "run" / "report.html").is_file()
