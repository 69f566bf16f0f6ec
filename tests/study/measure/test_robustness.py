"""Robustness in studies: stored models, the noisy monitor, the suite's stored results, resume, the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from noisereg import metrics
from noisereg.engine import build_module
from noisereg.robustness import corrupt
from noisereg.seeding import derive_seed, make_generator
from noisereg.study.stats import paired
from noisereg.study.bridge.prepare import prepare
from noisereg.study.measure.measurements import evaluate_cell
from noisereg.study.measure.robustness import (
    _settings,
    evaluate_robustness,
    measure_run,
)
from noisereg.study.run.runner import run_study
from noisereg.study.store import (
    ROBUSTNESS_PREFIX,
    ROBUSTNESS_VS_BASELINE,
    Store,
    default_url,
)
from noisereg.study.cell_models import load_cell_models, model_path
from tests.study.fakes import assert_stored_close, tiny_config
from tests.study.report.test_build import NO_TORCH, SRC

SMALL = {"smoothing": {"n0": 10, "n": 100, "inputs": 6}}


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("robust")
    summary = run_study(tiny_config(robustness=SMALL), run_dir)
    return run_dir, summary


def _store(run_dir: Path) -> Store:
    return Store(default_url(run_dir), "tiny")


def _replicas(run_dir: Path, cell: str):
    prep = prepare(tiny_config(robustness=SMALL))
    models = load_cell_models(run_dir / "models", cell)
    for r, (s, g) in enumerate(zip(models.seeds, models.folds)):
        module = build_module(prep.model)
        module.load_state_dict(models.state_dict(r))
        fold = prep.folds[g]
        yield (
            s,
            prep.seeds[s],
            module.eval(),
            torch.as_tensor(fold.x_test, dtype=torch.float32),
            torch.as_tensor(fold.y_test),
        )


def test_every_cells_models_reproduce_its_clean_and_noisy_test_accuracy(measured) -> None:
    run_dir, _ = measured
    done = _store(run_dir).completed()
    for cell, res in done.items():
        assert model_path(run_dir / "models", cell).is_file()
        for s, seed, module, x, y in _replicas(run_dir, cell):
            # the monitor's noise: tabular Gaussian at severity 3, from the replica's own stream
            noisy = corrupt(
                x, "gaussian", 3, constants="tabular", generator=make_generator(derive_seed(seed, "noisy_eval"))
            )
            with torch.no_grad():
                clean_acc = metrics.accuracy(module(x), y, from_logits=True)
                noisy_acc = metrics.accuracy(module(noisy), y, from_logits=True)
            i = res["seeds"].index(s)
            # float32 rounding of the stacked engine and nn.Linear may differ: one sample at most
            assert abs(clean_acc - res["final"]["test_acc"][i]) <= 1 / len(y) + 1e-12
            assert abs(noisy_acc - res["final"]["noisy_test_acc"][i]) <= 1 / len(y) + 1e-12


def test_stored_calibration_is_that_of_the_stored_models(measured) -> None:
    run_dir, _ = measured
    stored = _store(run_dir).attrs()[ROBUSTNESS_PREFIX + "input"]
    for s, _, module, x, y in _replicas(run_dir, "input"):
        with torch.no_grad():
            expected = metrics.classification_metrics(module(x), y, from_logits=True, n_bins=15)
        for key in ("accuracy", "ece", "adaptive_ece", "nll", "brier"):
            assert stored["calibration"][key][stored["seeds"].index(s)] == pytest.approx(
                expected[key], rel=1e-5, abs=1e-6
            )


def test_a_zero_strength_cell_is_measured_exactly_as_the_baseline(measured) -> None:
    run_dir, _ = measured
    attrs = _store(run_dir).attrs()
    # the same weights (to rounding: trained in stacks of other sizes) and the same corruption and
    # smoothing noise (common random numbers)
    assert_stored_close(attrs[ROBUSTNESS_PREFIX + "grid[std=0.0]"], attrs[ROBUSTNESS_PREFIX + "none"])
    versus = attrs[ROBUSTNESS_VS_BASELINE]
    assert versus["baseline"] == "none" and versus["settings"] == attrs[ROBUSTNESS_PREFIX + "none"]["settings"]
    for cell in ("none", "grid[std=0.0]"):
        assert versus["cells"][cell] == {"seeds": [0, 1, 2], "mce": [1.0] * 3, "relative_mce": [1.0] * 3}


def test_results_have_the_documented_shape_and_the_summary_carries_them(measured) -> None:
    run_dir, summary = measured
    stored = _store(run_dir).attrs()[ROBUSTNESS_PREFIX + "before"]
    corruptions = stored["corruptions"]
    assert corruptions["constants"] == "tabular" and corruptions["severities"] == [1, 2, 3, 4, 5]
    assert set(corruptions["accuracy"]) == {"gaussian", "impulse", "speckle", "uniform", "snr_gaussian"}
    assert [len(row) for row in corruptions["accuracy"]["gaussian"]] == [5, 5, 5]
    smoothing = stored["smoothing"]
    assert (
        smoothing["n"] == 100
        and smoothing["inputs"] == [6, 6, 6]
        and len(smoothing["certified"][0]) == len(smoothing["radii"]) == 9
    )
    assert all(
        1.0 >= a >= b >= 0.0 for row in smoothing["certified"] for a, b in zip(row, row[1:])
    )  # falls with the radius
    arm = next(a for a in summary["arms"] if a["name"] == "before")
    assert arm["calibration"]["ece"]["n"] == 3 and arm["corruption"]["mce"]["n"] == 3 and arm["certified"]["seeds"] == 3
    assert arm["noisy"]["gap"]["n"] == 3
    base_ece = _store(run_dir).attrs()[ROBUSTNESS_PREFIX + "none"]["calibration"]["ece"]
    assert arm["calibration"]["ece_paired"] == paired(stored["calibration"]["ece"], base_ece)
    assert "ece_paired" not in next(a for a in summary["arms"] if a["name"] == "none")["calibration"]
    assert summary["robustness"]["monitor"]["strength"] == 0.5 and summary["robustness"]["unmeasured"] == []


def test_measuring_twice_gives_the_same_numbers(measured) -> None:
    run_dir, _ = measured
    cfg = tiny_config(robustness=SMALL)
    prep, settings = prepare(cfg), _settings(cfg.robustness)
    models = load_cell_models(run_dir / "models", "input")
    assert evaluate_cell(prep, models, settings) == evaluate_cell(prep, models, settings)


def test_a_rerun_keeps_measurements_and_new_settings_measure_again(measured, tmp_path) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(measured[0], run_dir)
    prep = prepare(tiny_config(robustness=SMALL))
    again = evaluate_robustness(prep, _store(run_dir), run_dir / "models")
    assert again["evaluated"] == [] and len(again["kept"]) == 6
    model_path(run_dir / "models", "input").unlink()
    # run.json names the original store: the copy's own is given explicitly
    summary = measure_run(run_dir, storage=default_url(run_dir), changes={"smoothing": {"n": 50, "inputs": 2}})
    assert summary["measured"]["without_models"] == ["input"] and len(summary["measured"]["evaluated"]) == 5
    by_name = {a["name"]: a for a in summary["arms"]}
    assert by_name["before"]["certified"]["n0"] == 10 and by_name["before"]["certified"]["inputs"] == 2
    assert by_name["input"]["certified"] is None and summary["robustness"]["unmeasured"] == ["input"]
    md = (run_dir / "summary.md").read_text()
    assert "n = 50" in md and "| input |" not in md.split("## Calibration")[1]


def test_the_report_shows_robustness_without_torch(measured) -> None:
    run_dir, _ = measured
    (run_dir / "summary.md").unlink()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(run_dir)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    md = (run_dir / "summary.md").read_text()
    for title in (
        "## Noisy test data during training",
        "## Calibration",
        "## Corruption robustness",
        "## Certified accuracy",
    ):
        assert title in md
    html = (run_dir / "report.html").read_text()
    for png in ("noisy_gap", "corruptions", "reliability", "ece", "certified"):
        assert f'src="plots/{png}.png"' in html and (run_dir / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["robustness"]["settings"]["smoothing"]["n"] == 100
