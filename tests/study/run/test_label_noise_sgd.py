"""The label-noise-sgd study, shrunk: the Hessian trace is measured, stored, compared and reported."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisereg.curvature import hessian_trace
from noisereg.engine import build_module
from noisereg.seeding import derive_seed
from noisereg.study.bridge.prepare import prepare
from noisereg.study.config import StudyConfigError, parse_config, resolve_study
from noisereg.study.run.runner import run_study
from noisereg.study.cell_models import load_cell_models


def _shrunk() -> dict:
    raw = resolve_study("label-noise-sgd").model_dump(mode="json")
    raw["seeds"], raw["arms"] = 3, raw["arms"][:2]
    raw["model"] = {**raw["model"], "widths": [16]}
    raw["training"] = {**raw["training"], "epochs": 3, "eval_every": 1, "hessian_trace": 4}
    return raw


def test_the_trace_is_stored_per_seed_paired_and_reported(tmp_path) -> None:
    config = parse_config(_shrunk())
    assert config.topic == "flat minima" and "Damian" in config.claim
    summary = run_study(config, tmp_path)
    arms = {a["name"]: a for a in summary["arms"]}
    base, noisy = arms["no noise"]["hessian_trace"], arms["label noise 0.5"]["hessian_trace"]
    assert base["n"] == 3 and base["paired"] is None
    assert noisy["paired"]["n"] == 3 and {"p_holm", "flatter", "sharper"} <= set(noisy["paired"])
    text = (tmp_path / "summary.md").read_text()
    assert "## Hessian trace (sharpness)" in text and "Hessian trace" in (tmp_path / "report.html").read_text()

    # The stored value is Hutchinson's estimate on the clean training loss at the stored weights.
    prep = prepare(config)
    models = load_cell_models(tmp_path / "models", "no noise")
    r = 0
    module = build_module(prep.model).double()
    module.load_state_dict({k: v.double() for k, v in models.state_dict(r).items()})
    fold = prep.folds[models.folds[r]]
    x = torch.as_tensor(fold.x_train, dtype=torch.float64)
    y = torch.as_tensor(fold.y_train, dtype=torch.float64).reshape(-1, 1)
    seed = derive_seed(prep.seeds[models.seeds[r]], "hessian_trace")
    expected = hessian_trace(lambda: F.mse_loss(module.eval()(x), y), module, samples=4, seed=seed).estimate
    assert expected == pytest.approx(_stored_value(tmp_path, models.seeds[r]), rel=1e-9)


def _stored_value(run_dir, seed_index: int) -> float:
    from noisereg.study.store import Store, default_url

    store = Store(default_url(run_dir), "label-noise-sgd")
    done = store.completed()
    res = done["no noise"]
    return float(res["final"]["hessian_trace"][res["seeds"].index(seed_index)])


def test_hessian_trace_needs_at_least_two_probes() -> None:
    raw = _shrunk()
    raw["training"]["hessian_trace"] = 1
    with pytest.raises(StudyConfigError, match=r"training\.hessian_trace"):
        parse_config(raw)
