"""Report files rebuilt from the store alone, and without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from noisereg.study.report import build_report
from tests.study.fakes import populate, tiny_config

SRC = Path(__file__).resolve().parents[3] / "src"

# The real command, with every torch import made to fail: the report needs none.
NO_TORCH = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
sys.argv = ["noisereg", "report", sys.argv[1], "--quiet"]
try:
    runpy.run_module("noisereg", run_name="__main__")
finally:
    assert "torch" not in sys.modules, "torch was imported"
"""


def test_build_report_writes_every_file(tmp_path: Path) -> None:
    populate(tmp_path, tiny_config(), {"before": 0.05})
    summary = build_report(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["schema"] == "noisereg.summary/3"
    for key in ("metric", "baseline", "arms", "selection"):
        assert key in summary
    for arm in summary["arms"]:
        assert {"name", "n", "mean", "std", "ci95", "paired"} <= set(arm)
    md = (tmp_path / "summary.md").read_text()
    assert summary["verdict"]["text"] in md and "| grid[std=0.1] ← chosen" not in md
    assert "## Interval estimates and effect sizes" in md and "| arm | IQM [95% CI] |" in md
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Interval estimates and effect sizes</h2>" in html and "P(better) [95% CI]" in html
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["grid_grid.png", "learning_curves.png", "profiles.png", "seeds.png"]
    for png in pngs:
        assert f'src="plots/{png}"' in html
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_report_command_needs_no_torch(tmp_path: Path) -> None:
    populate(tmp_path, tiny_config(), {})
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tmp_path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["study"] == "tiny"
