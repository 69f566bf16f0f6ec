"""An effect study end to end, shrunk: its published claim and its paired contrasts reach the report."""

from __future__ import annotations

from noisereg.study.config import parse_config, resolve_study
from noisereg.study.run.runner import run_study


def test_moons_sites_runs_and_states_the_claim_beside_the_measurement(tmp_path) -> None:
    raw = resolve_study("moons-sites").model_dump(mode="json")
    raw["seeds"], raw["training"] = 3, {**raw["training"], "epochs": 4, "eval_every": 2}
    summary = run_study(parse_config(raw), tmp_path)
    assert summary["claim"].startswith("Small-data folklore")
    contrasts = {a["name"]: a["versus"]["arm"] for a in summary["arms"] if a.get("versus")}
    assert contrasts == {"hidden 0.3 before ReLU": "input 0.3", "hidden 0.3 after ReLU": "input 0.3"}
    text = (tmp_path / "summary.md").read_text()
    assert "**Published claim.**" in text and "**Measured here.**" in text and "## Paired contrasts" in text
    assert "## Recommendation" in text and "Recommendation" in (tmp_path / "report.html").read_text()
