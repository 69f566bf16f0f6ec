"""An effect study end to end, shrunk: its published claim and its paired contrasts reach the report."""

from __future__ import annotations

import pytest

from noisereg.study.config import StudyConfigError, parse_config, resolve_study
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


def test_tikhonov_ridge_arm_is_closed_form_ridge_and_input_noise_lands_beside_it(tmp_path) -> None:
    import numpy as np

    from noisereg.study.bridge.prepare import prepare

    raw = resolve_study("tikhonov").model_dump(mode="json")
    raw["seeds"], raw["arms"] = 2, raw["arms"][:3]  # least squares, ridge lambda 27, input noise 0.3
    raw["training"] = {**raw["training"], "epochs": 1500, "eval_every": 500}
    config = parse_config(raw)
    fold = prepare(config).folds[0]
    x, y = fold.x_train, fold.y_train
    n, sigma = len(y), 0.3
    # centered features and target: the bias's optimum is 0, so weight decay on it changes nothing
    assert abs(x.mean(0)).max() < 1e-12 and abs(y.mean()) < 1e-12 and n == 300
    ridge = np.linalg.solve(
        x.T @ x + n * sigma**2 * np.eye(x.shape[1]), x.T @ y
    )  # sum loss + lambda |w|^2, lambda = n sigma^2
    summary = run_study(config, tmp_path, robustness=False)
    arms = {a["name"]: a for a in summary["arms"]}
    fitted = np.asarray(arms["ridge lambda 27 (sigma 0.3)"]["coef"]["mean"])
    # 1500 full-batch steps contract the error by (1 - 0.1 * 2 * (0.0072 + 0.09))^1500 < 1e-12; float32 rounding remains
    np.testing.assert_allclose(fitted, ridge, atol=1e-4)
    distance = arms["input noise 0.3"]["versus"]["distance"]
    assert distance["means"] < 0.25 * distance["other_from_baseline"]
    text = (tmp_path / "summary.md").read_text()
    assert "## Fitted weights" in text and "## Distance between weight vectors" in text and "| bmi |" in text


def test_nested_selection_estimates_choose_then_train_per_outer_fold(tmp_path) -> None:
    from noisereg.study.bridge.prepare import prepare
    from noisereg.study.selection import choose
    from noisereg.study.store import Store, default_url
    from tests.study.fakes import tiny_raw

    raw = tiny_raw(seeds=2, selection={"arm": "grid", "folds": 3, "nested": True, "rule": "best"})
    config = parse_config(raw)
    prep = prepare(config)
    roles = {c.key: sorted({prep.folds[g].role for g in prep.folds_of(c)}) for c in prep.cells}
    assert roles["none"] == ["nested_test", "test"] and roles["input"] == ["test"]
    assert roles["grid[std=0.1]"] == ["cv", "nested_cv", "nested_test", "test"]
    summary = run_study(config, tmp_path, robustness=False)
    nested = summary["selection"]["nested"]
    assert nested["folds"] == 3 and nested["seeds"] == 2 and set(nested["chosen"]) <= {0.0, 0.1, 1.0}
    done = Store(default_url(tmp_path), "tiny").completed()
    keys = ["grid[std=0.0]", "grid[std=0.1]", "grid[std=1.0]"]
    for o in range(3):
        cvs = [done[k]["nested"][o]["cv"] for k in keys]  # the whole procedure, the gain check included
        i = choose([0.0, 0.1, 1.0], cvs, score="likelihood", rule="best", guard=True)
        picked, base = done[keys[i]]["nested"][o]["test"]["test_acc"], done["none"]["nested"][o]["test"]["test_acc"]
        assert nested["chosen"][o] == [0.0, 0.1, 1.0][i]
        assert abs(nested["chosen_metric"][o] - sum(picked) / 2) < 1e-12
        assert abs(nested["baseline_metric"][o] - sum(base) / 2) < 1e-12
    gains = [c - b for c, b in zip(nested["chosen_metric"], nested["baseline_metric"], strict=True)]
    assert abs(nested["gain"]["mean"] - sum(gains) / 3) < 1e-12
    assert "Nested cross-validation (3 outer folds" in (tmp_path / "summary.md").read_text()
    with_early = tiny_raw(selection={"arm": "grid", "folds": 3, "nested": True, "criterion": "early"})
    with pytest.raises(StudyConfigError, match="use a criterion other than 'early'"):
        parse_config(with_early)
