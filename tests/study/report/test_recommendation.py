"""The recommendation on constructed results: a clear winner, a tie, a grid edge, too few points."""

from __future__ import annotations

from noisereg.study.report.recommendation import recommend
from noisereg.study.stats import holm, paired, summary_statistics

SEEDS = list(range(12))


def arm(name: str, values: list[float], base: list[float] | None, *, grid: tuple[str, float] | None = None) -> dict:
    entry = {
        "name": name,
        "arm": grid[0] if grid else name,
        "grid_value": grid[1] if grid else None,
        "param": "std" if grid else None,
        **summary_statistics(values),
        "paired": paired(values, base) if base is not None else None,
    }
    return entry


def summary(
    cells: dict[str, list[float]], *, n_train: int = 200, n_test: int = 500, seeds: int = 12, grids: dict | None = None
) -> tuple[dict, dict]:
    base = cells["none"]
    arms = [arm(k, v, None if k == "none" else base, grid=(grids or {}).get(k)) for k, v in cells.items()]
    compared = [a for a in arms if a["paired"]]
    for a, p in zip(compared, holm([a["paired"]["p_ttest"] for a in compared])):
        a["paired"].update(
            p_holm=p, better=p < 0.05 and a["paired"]["mean_diff"] > 0, worse=p < 0.05 and a["paired"]["mean_diff"] < 0
        )
    s = {
        "arms": arms,
        "metric": "accuracy",
        "higher_is_better": True,
        "baseline": "none",
        "seeds": seeds,
        "data": {"n_train": [n_train], "n_test": [n_test]},
        "selection": None,
    }
    return s, {k: dict(zip(SEEDS, v)) for k, v in cells.items()}


def wobble(mean: float, k: int = 0) -> list[float]:
    return [mean + 0.01 * (((i + k) * 7) % 5 - 2) for i in SEEDS]


def test_a_clear_winner_is_recommended_with_its_evidence() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1), "b": wobble(0.71, 2)})
    rec = recommend(s, per_seed)
    assert rec["status"] == "use" and rec["cell"] == "a" and rec["text"].startswith("Use a:")
    assert rec["evidence"][0].startswith("a: test accuracy 0.8") and "Holm p" in rec["evidence"][0]
    assert not any("Tie" in c for c in rec["caveats"]) and any("picked on the test set" in c for c in rec["caveats"])


def test_two_settings_that_cannot_be_told_apart_are_called_a_tie() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1), "b": wobble(0.80, 3)})
    rec = recommend(s, per_seed)
    assert rec["status"] == "use" and any(c.startswith("Tie within noise") for c in rec["caveats"])


def test_a_choice_at_the_grid_edge_says_extend_the_grid() -> None:
    cells = {"none": wobble(0.70), "g[std=0.1]": wobble(0.72, 1), "g[std=1.0]": wobble(0.80, 2)}
    s, per_seed = summary(cells, grids={"g[std=0.1]": ("g", 0.1), "g[std=1.0]": ("g", 1.0)})
    rec = recommend(s, per_seed)
    assert rec["cell"] == "g[std=1.0]" and rec["noise"] == {"arm": "g", "param": "std", "value": 1.0}
    assert any("largest value of its grid" in c and "extend the grid" in c for c in rec["caveats"])


def test_too_few_points_and_seeds_are_said_plainly() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)}, n_train=30, n_test=70, seeds=5)
    caveats = " ".join(recommend(s, per_seed)["caveats"])
    assert "30 training samples" in caveats and "70 test samples" in caveats and "Only 5 seeds" in caveats


def test_no_winner_keeps_no_noise_or_says_the_data_cannot_decide() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.60, 1)})
    assert recommend(s, per_seed)["status"] == "no_noise"
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.702, 1)})
    rec = recommend(s, per_seed)
    assert rec["status"] == "undecided" and rec["cell"] == "a" and rec["text"].startswith("The data cannot decide")


def test_a_calibration_measurement_that_contradicts_the_choice_is_said_plainly() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)})
    a = next(x for x in s["arms"] if x["name"] == "a")
    a["calibration"] = {"ece_paired": paired(wobble(0.14, 1), wobble(0.02))}
    rec = recommend(s, per_seed)
    assert rec["status"] == "use"
    [said] = [
        c for c in rec["caveats"] if c.startswith("Calibration contradicts this choice: a is significantly worse on")
    ]
    assert (
        f"expected calibration error (ECE) {a['calibration']['ece_paired']['mean_diff']:+.4f} against no noise" in said
    )
    a["calibration"] = {"ece_paired": paired(wobble(0.01, 1), wobble(0.10))}
    assert any("a is also better on expected calibration error" in e for e in recommend(s, per_seed)["evidence"])


def test_with_no_noise_recommended_a_more_robust_setting_is_named() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.60, 1)})
    a = next(x for x in s["arms"] if x["name"] == "a")
    a["noisy"] = {"paired": paired(wobble(0.65, 1), wobble(0.50))}
    rec = recommend(s, per_seed)
    assert rec["status"] == "no_noise"
    diff = a["noisy"]["paired"]["mean_diff"]
    assert any(
        c.startswith("Robustness says otherwise: a does not beat no noise")
        and f"test accuracy on noisy inputs {diff:+.4f}" in c
        for c in rec["caveats"]
    )
    a["noisy"] = {"paired": paired(wobble(0.5, 1), wobble(0.50))}  # no difference: nothing said
    assert not any("Robustness" in c for c in recommend(s, per_seed)["caveats"])


def test_the_nested_estimate_is_evidence_and_a_caveat_when_it_lies_below_zero() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)})
    s["selection"] = {
        "param": "std",
        "nested": {"folds": 5, "gain": summary_statistics([-0.05, -0.04, -0.06, -0.05, -0.045])},
    }
    rec = recommend(s, per_seed)
    assert any(
        e.startswith("nested cross-validation of choosing std by CV, then training: -0.0490") for e in rec["evidence"]
    )
    assert any("does worse than no noise" in c for c in rec["caveats"])
    assert any("the nested cross-validation estimate does not have that bias" in c for c in rec["caveats"])


def test_a_noisy_input_comparison_across_input_scales_is_not_weighed_and_says_why() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)})
    a = next(x for x in s["arms"] if x["name"] == "a")
    scale = "its inputs are standardized and the baseline's raw, so the same test-noise σ is a different amount of noise on each"
    a["noisy"] = {"paired": {**paired(wobble(0.40, 1), wobble(0.60)), "like_for_like": False, "scale": scale}}
    rec = recommend(s, per_seed)
    assert rec["status"] == "use" and not any(c.startswith("Robustness contradicts") for c in rec["caveats"])
    assert f"Robustness is not weighed for a: {scale} (not like for like)." in rec["caveats"]
    del a["noisy"]["paired"]["like_for_like"]  # the same numbers on a common scale are weighed
    assert any(
        c.startswith("Robustness contradicts this choice: a is significantly worse")
        for c in recommend(s, per_seed)["caveats"]
    )
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.60, 1)})
    a = next(x for x in s["arms"] if x["name"] == "a")
    a["noisy"] = {"paired": {**paired(wobble(0.65, 1), wobble(0.50)), "like_for_like": False, "scale": scale}}
    rec = recommend(s, per_seed)
    assert rec["status"] == "no_noise" and not any(c.startswith("Robustness says otherwise") for c in rec["caveats"])
    assert f"Robustness is not weighed for a: {scale} (not like for like)." in rec["caveats"]
