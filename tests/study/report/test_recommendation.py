"""The recommendation on constructed results: the selection's choice, the optimistic best test cell, a grid edge,
too few points, no selection."""

from __future__ import annotations

from noisereg.study.report.recommendation import recommend
from noisereg.study.stats import bootstrap_paired, holm, paired, power, summary_statistics

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
    cells: dict[str, list[float]],
    *,
    n_train: int = 200,
    n_test: int = 500,
    seeds: int = 12,
    grids: dict | None = None,
    chosen: str | None = None,
) -> tuple[dict, dict]:
    """A summary of ``cells`` (name -> per-seed values; "none" is the baseline); with ``chosen``, a
    selection (cross-validation on the training part) that chose that cell."""
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
    if chosen is not None:
        entry = next(a for a in arms if a["name"] == chosen)
        s["selection"] = {"arm": entry["arm"], "param": "std", "criterion": "likelihood", "cell": chosen, "test": entry}
    return s, {k: dict(zip(SEEDS, v)) for k, v in cells.items()}


def wobble(mean: float, k: int = 0) -> list[float]:
    return [mean + 0.01 * (((i + k) * 7) % 5 - 2) for i in SEEDS]


def test_the_selections_choice_is_recommended_with_its_test_estimate() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1), "b": wobble(0.71, 2)}, chosen="a")
    rec = recommend(s, per_seed)
    assert rec["status"] == "use" and rec["cell"] == "a" and rec["chosen_by"] == "cross-validation"
    assert rec["text"].startswith("Use a, chosen by cross-validation on the training part (likelihood)")
    assert rec["evidence"][0].startswith("a: test accuracy 0.8") and "Holm p" in rec["evidence"][0]
    a = s["arms"][1]
    assert rec["estimate"] == {
        "mean": a["mean"],
        "ci95": a["ci95"],
        "n": 12,
        **{k: a["paired"][k] for k in ("mean_diff", "ci95_diff", "p_ttest", "p_holm")},
        "anytime": None,  # a fixed study: no confidence sequence
    }
    assert rec["optimistic"] is None and not any("optimistic" in c for c in rec["caveats"])


def test_cv_choosing_a_while_the_test_set_favours_b_recommends_a_and_shows_b_as_optimistic() -> None:
    cells = {"none": wobble(0.70), "a": wobble(0.78, 1), "b": wobble(0.82, 3)}
    s, per_seed = summary(cells, chosen="a")
    rec = recommend(s, per_seed)
    assert rec["status"] == "use" and rec["cell"] == "a" and rec["noise"]["arm"] == "a"
    assert rec["beat_no_noise"] == ["b", "a"]  # both beat no noise; the test set's order does not choose
    assert rec["optimistic"]["cell"] == "b" and rec["optimistic"]["mean"] == s["arms"][2]["mean"]
    [said] = [c for c in rec["caveats"] if c.startswith("The best test mean, b (0.8200")]
    assert "picked on the same test data it is scored on: optimistic" in said
    assert "On the test set it differs from a" in said  # b − a is a constant 0.04 but for the wobble
    assert "The best test mean, b, is optimistic" in rec["text"]


def test_a_choice_the_test_set_cannot_confirm_is_undecided_and_a_worse_one_is_refused() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.702, 1), "b": wobble(0.80, 2)}, chosen="a")
    rec = recommend(s, per_seed)
    assert rec["status"] == "undecided" and rec["cell"] == "a" and rec["text"].startswith("The data cannot decide: a,")
    assert rec["optimistic"]["cell"] == "b"
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.60, 1)}, chosen="a")
    rec = recommend(s, per_seed)
    assert rec["status"] == "no_noise" and rec["cell"] is None and "do not follow it" in rec["text"]
    assert rec["evidence"][0].startswith("a: test accuracy 0.6")


def test_without_a_selection_the_settings_that_beat_no_noise_are_named_but_none_is_crowned() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1), "b": wobble(0.76, 2), "c": wobble(0.70, 3)})
    rec = recommend(s, per_seed)
    assert rec["status"] == "unselected" and rec["cell"] is None and rec["noise"] is None and rec["estimate"] is None
    assert rec["beat_no_noise"] == ["a", "b"] and rec["chosen_by"] is None
    assert (
        rec["text"].startswith("2 setting(s) beat no noise on test accuracy")
        and ": a, b. None is crowned" in rec["text"]
    )
    assert "add a [selection] section to the study file" in rec["text"]
    assert [e.split(":")[0] for e in rec["evidence"]] == ["a", "b"]
    assert rec["optimistic"]["cell"] == "a"


def test_a_choice_at_the_grid_edge_says_extend_the_grid() -> None:
    cells = {"none": wobble(0.70), "g[std=0.1]": wobble(0.72, 1), "g[std=1.0]": wobble(0.80, 2)}
    s, per_seed = summary(cells, grids={"g[std=0.1]": ("g", 0.1), "g[std=1.0]": ("g", 1.0)}, chosen="g[std=1.0]")
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
    assert rec["status"] == "undecided" and rec["cell"] is None and rec["text"].startswith("The data cannot decide")
    assert rec["optimistic"]["cell"] == "a"


def test_a_calibration_measurement_that_contradicts_the_choice_is_said_plainly() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)}, chosen="a")
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
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)}, chosen="a")
    s["selection"]["nested"] = {"folds": 5, "gain": summary_statistics([-0.05, -0.04, -0.06, -0.05, -0.045])}
    rec = recommend(s, per_seed)
    assert any(
        e.startswith("nested cross-validation of choosing std by CV, then training: -0.0490") for e in rec["evidence"]
    )
    assert any("does worse than no noise" in c for c in rec["caveats"])


def test_a_noisy_input_comparison_across_input_scales_is_not_weighed_and_says_why() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.80, 1)}, chosen="a")
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


def test_the_evidence_quotes_the_bootstrap_and_what_the_seeds_could_detect() -> None:
    s, per_seed = summary({"none": wobble(0.70), "a": wobble(0.702, 1)}, chosen="a")
    a = s["arms"][1]
    a["paired"]["bootstrap"] = bootstrap_paired(list(per_seed["a"].values()), list(per_seed["none"].values()), seed=0)
    a["paired"]["power"] = power(a["paired"]["std_diff"], 12, effect=a["paired"]["mean_diff"])
    [said] = recommend(s, per_seed)["evidence"]
    lo, hi = a["paired"]["bootstrap"]["ci95_diff"]
    assert f"bootstrap 95% CI [{lo:.3g}, {hi:.3g}]" in said
    mde, needed = a["paired"]["power"]["mde"], a["paired"]["power"]["seeds_needed"]
    assert f"detects a difference of {mde:.3g} with 80% power, and about {needed} seeds would detect this one" in said
    assert needed > 12
