"""Selection procedures on hand-computed cross-validation results (exact)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from noisereg.study.cells import plan_cells
from noisereg.study.report.documents import selection_texts
from noisereg.study.report.summary import summarize
from noisereg.study.selection import choose, fold_scores, gain_check, procedure_name, screened
from tests.study.fakes import fake_results, tiny_config

VALUES = [0.0, 0.1, 0.3, 1.0]


def cv(loss: list[list[float]], acc: list[list[float]] | None = None, brier: list[list[float]] | None = None) -> dict:
    out: dict = {"val_loss": loss}
    if acc is not None:
        out["val_acc"] = acc
    if brier is not None:
        out["val_brier"] = brier
    return out


def test_likelihood_takes_the_lowest_mean_loss_and_accuracy_the_highest_mean_accuracy() -> None:
    cvs = [
        cv([[0.6, 0.6]], [[0.5, 0.5]]),
        cv([[0.4, 0.4]], [[1.0, 0.5]]),
        cv([[0.2, 0.4]], [[0.5, 1.0]]),  # lowest loss (0.3)
        cv([[0.5, 0.5]], [[1.0, 1.0]]),  # highest accuracy
    ]
    assert choose(VALUES, cvs, score="likelihood", screen=False) == 2
    assert choose(VALUES, cvs, score="accuracy") == 3
    # screened: value 1.0's folds [1, 1] have se 0, so only accuracies of exactly 1.0 stay eligible
    assert choose(VALUES, cvs, score="likelihood") == 3


def test_exact_ties_go_to_the_smallest_value_whatever_the_order() -> None:
    cvs = [cv([[0.5]], [[1.0]]), cv([[0.5]], [[1.0]]), cv([[0.5]], [[1.0]])]
    assert choose([1.0, 0.1, 0.3], cvs, score="accuracy") == 1
    assert choose([1.0, 0.1, 0.3], cvs, score="likelihood") == 1


def test_one_standard_error_rule_takes_the_least_noise_within_one_se_of_the_best() -> None:
    # best: value 1.0 with folds [0.1, 0.3] -> mean 0.2, sd 0.1414.., se 0.1 -> limit 0.3
    cvs = [cv([[0.40, 0.40]]), cv([[0.30, 0.30]]), cv([[0.25, 0.30]]), cv([[0.10, 0.30]])]
    assert choose(VALUES, cvs, rule="best") == 3
    assert choose(VALUES, cvs, rule="one_se") == 1  # 0.30 <= 0.30; 0.40 is not


def test_seeds_limits_the_seeds_averaged() -> None:
    cvs = [cv([[0.5, 0.5], [0.1, 0.1]]), cv([[0.4, 0.4], [0.4, 0.4]])]
    assert choose([0.0, 0.1], cvs, seeds=1) == 1  # first seed: 0.5 vs 0.4
    assert choose([0.0, 0.1], cvs) == 0  # both seeds: 0.3 vs 0.4


def test_early_stopped_likelihood_uses_the_epoch_of_the_lowest_mean_curve() -> None:
    a = {"val_loss_curve": [[[0.9, 0.2, 0.8], [0.9, 0.4, 0.8]]]}  # best epoch 1: 0.3
    b = {"val_loss_curve": [[[0.5, 0.6, 0.35], [0.5, 0.6, 0.35]]]}  # best epoch 2: 0.35
    assert fold_scores(a, "early").tolist() == [0.2, 0.4]
    assert choose([0.0, 0.1], [a, b], score="early") == 0


def test_brier_and_missing_values() -> None:
    cvs = [cv([[0.1]], brier=[[0.3]]), None, cv([[0.9]], brier=[[0.2]])]
    assert choose([0.0, 0.1, 0.3], cvs, score="brier") == 2
    assert choose([0.0, None, 0.3], cvs, score="likelihood") == 0
    assert choose([0.0, 0.1], [cv([[0.1]]), cv([[0.2]])], score="brier") is None


def test_the_screen_keeps_values_within_two_se_of_the_best_accuracy() -> None:
    # best accuracy: value 0.0, seed-averaged folds [0.8, 0.9] -> mean 0.85, se 0.05 -> limit 0.75
    cvs = [
        cv([[3.8, 3.8]], [[0.8, 0.9]]),
        cv([[2.3, 2.3]], [[0.8, 0.8]]),
        cv([[1.2, 1.2]], [[0.6, 0.7]]),
        cv([[0.69, 0.69]], [[0.5, 0.5]]),
    ]
    assert screened(VALUES, cvs) == [True, True, False, False]
    assert choose(VALUES, cvs) == 1  # the lowest loss among 0.0 and 0.1
    assert choose(VALUES, cvs, screen=False) == 3  # the base-rate predictor's log 2 wins unscreened
    assert choose(VALUES, cvs, score="brier") is None  # no Brier scores: the screen adds none
    assert choose(VALUES, cvs, score="accuracy") == 0


def test_the_screen_reads_the_same_seeds_as_the_score() -> None:
    # seed 0 alone: value 0.1 is the most accurate; both seeds: value 0.0 is, and 0.1 falls outside
    cvs = [
        cv([[0.9, 0.9], [0.9, 0.9]], [[0.5, 0.5], [1.0, 1.0]]),
        cv([[0.1, 0.1], [0.1, 0.1]], [[0.6, 0.6], [0.3, 0.3]]),
    ]
    assert screened([0.0, 0.1], cvs, seeds=1) == [False, True]
    assert screened([0.0, 0.1], cvs) == [True, False]
    assert choose([0.0, 0.1], cvs, seeds=1) == 1
    assert choose([0.0, 0.1], cvs) == 0


def test_without_accuracy_everywhere_the_screen_keeps_every_value() -> None:
    regression = [cv([[0.5]]), cv([[0.4]])]
    assert screened([0.0, 0.1], regression) == [True, True]
    assert choose([0.0, 0.1], regression) == 1
    mixed = [cv([[0.5]], [[1.0]]), cv([[0.4]])]
    assert screened([0.0, 0.1], mixed) == [True, True]
    assert screened([0.0, None], [cv([[0.5]], [[1.0]]), None]) == [True, True]


def test_procedure_names_say_when_the_screen_is_off() -> None:
    assert procedure_name("likelihood", "one_se", 3) == "likelihood, 1-SE, 3 seeds"
    assert procedure_name("likelihood", "one_se", 3, screen=False) == "likelihood, 1-SE, 3 seeds, unscreened"
    assert procedure_name("accuracy", screen=False) == "accuracy"


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="score='lik'"):
        choose([0.0], [cv([[0.1]])], score="lik")
    with pytest.raises(ValueError, match="rule='1se'"):
        choose([0.0], [cv([[0.1]])], rule="1se")
    with pytest.raises(ValueError, match="seeds=0"):
        choose([0.0], [cv([[0.1]])], seeds=0)
    with pytest.raises(ValueError, match="same length"):
        choose([0.0, 1.0], [cv([[0.1]])])
    with pytest.raises(ValueError, match=r"\[seeds, folds\]"):
        fold_scores({"val_loss": [0.1, 0.2]}, "likelihood")


def test_procedure_names() -> None:
    assert procedure_name("likelihood", "one_se", 3) == "likelihood, 1-SE, 3 seeds"
    assert procedure_name("accuracy") == "accuracy"


def _folds(gains: list[float], base: float = 0.6) -> tuple[dict, dict]:
    """CV results of no noise and of a value whose per-fold accuracy gains are ``gains`` (one seed)."""
    return cv([[1.0] * len(gains)], [[base] * len(gains)]), cv([[0.5] * len(gains)], [[base + g for g in gains]])


def test_the_gain_check_is_a_one_sided_paired_t_test_over_the_folds() -> None:
    gains = [0.10, 0.05, 0.10, 0.05, 0.10]
    zero, noisy = _folds(gains)
    check = gain_check([0.0, 0.1], [zero, noisy], 1)
    d = np.asarray(gains)
    half = stats.t.ppf(0.95, 4) * d.std(ddof=1) / np.sqrt(5)  # 90% two-sided = one-sided 95%
    assert check["ci"] == pytest.approx([d.mean() - half, d.mean() + half], rel=1e-12)
    assert check["passed"] and check["metric"] == "accuracy" and check["folds"] == 5 and check["value"] == 0.1
    # the one-sided p-value of the t-test is below 0.05 exactly when the bound is above zero
    assert stats.ttest_1samp(d, 0.0, alternative="greater").pvalue < 0.05
    corrected = gain_check([0.0, 0.1], [zero, noisy], 1, corrected=True)
    ratio = (corrected["ci"][1] - corrected["ci"][0]) / (check["ci"][1] - check["ci"][0])
    assert ratio == pytest.approx(np.sqrt((1 / 5 + 1 / 4) / (1 / 5)), rel=1e-12)  # Nadeau & Bengio


def test_the_gain_check_sends_a_choice_without_a_clear_cv_gain_back_to_no_noise() -> None:
    # the likelihood prefers 1.0 by far (a better calibrated, smaller-logit network), CV accuracy barely moves
    zero, noisy = _folds([0.05, -0.02, 0.03, 0.0, 0.01])
    values, cvs = [0.0, 1.0], [zero, noisy]
    assert choose(values, cvs) == 1 and choose(values, cvs, rule="one_se") == 1
    assert choose(values, cvs, guard=True) == 0 and choose(values, cvs, rule="one_se", guard=True) == 0
    assert not gain_check(values, cvs, 1)["passed"]
    clear = _folds([0.05, 0.04, 0.06, 0.05, 0.05])
    assert choose(values, list(clear), guard=True) == 1


def test_the_gain_check_for_regression_is_on_the_squared_error() -> None:
    zero = cv([[1.0, 1.2, 0.9, 1.1, 1.0]])
    noisy = cv([[0.7, 0.8, 0.6, 0.8, 0.7]])
    check = gain_check([0.0, 0.3], [zero, noisy], 1)
    assert check["metric"] == "loss" and check["gain"] == pytest.approx(0.32) and check["passed"]
    assert choose([0.0, 0.3], [zero, cv([[0.9, 1.3, 0.8, 1.2, 1.1]])], guard=True) == 0


def test_nothing_to_check_without_no_noise_in_the_grid_or_for_no_noise_itself() -> None:
    zero, noisy = _folds([0.0, 0.0, 0.01, -0.01, 0.0])
    assert gain_check([0.0, 0.1], [zero, noisy], 0) is None
    assert gain_check([0.03, 0.1], [zero, noisy], 1) is None  # no 0 in the grid: nothing to compare with
    assert choose([0.03, 0.1], [zero, noisy], guard=True) == choose([0.03, 0.1], [zero, noisy])
    assert gain_check([0.0, 0.1], [zero, {"val_loss": [[0.5] * 5]}], 1)["metric"] == "loss"  # no accuracy on one
    assert gain_check([0.0, 0.1], [zero, None], 1) is None
    with pytest.raises(ValueError, match="index=2"):
        gain_check([0.0, 0.1], [zero, noisy], 2)
    with pytest.raises(ValueError, match="confidence=1.5"):
        gain_check([0.0, 0.1], [zero, noisy], 1, confidence=1.5)


def test_the_gain_check_reads_the_same_seeds_as_the_score() -> None:
    # seed 0 shows a clear gain; seed 1 (read only without a seed limit) cancels it
    zero = cv([[1.0] * 5, [1.0] * 5], [[0.6] * 5, [0.6] * 5])
    noisy = cv([[0.5] * 5, [0.5] * 5], [[0.7, 0.71, 0.69, 0.7, 0.7], [0.45, 0.52, 0.49, 0.5, 0.48]])
    assert gain_check([0.0, 0.1], [zero, noisy], 1, seeds=1)["passed"]
    assert not gain_check([0.0, 0.1], [zero, noisy], 1)["passed"]
    assert choose([0.0, 0.1], [zero, noisy], seeds=1, guard=True) == 1


def test_procedure_names_say_when_the_gain_check_is_on() -> None:
    assert procedure_name("likelihood", "one_se", guard=True) == "likelihood, 1-SE, gain check"


def _study(acc_gain: list[float]) -> dict:
    """The summary of a tiny stored study whose grid value 1.0 has the lowest CV loss and the per-fold
    CV accuracy gains ``acc_gain`` over no noise; on test it is 0.05 better than no noise."""
    cfg = tiny_config()
    attrs = {
        "config": cfg.model_dump(mode="json"),
        "cells": {c.key: c.meta() for c in plan_cells(cfg)},
        "meta": {"task": "classification"},
    }
    done = {}
    for key, meta in attrs["cells"].items():
        done[key] = fake_results(key, 6, 0.05 if key == "grid[std=1.0]" else 0.0, cv=meta["selection"])
        done[key]["final"]["test_acc"] = [
            a + 0.01 * ((i * 7 + len(key) + (key == "none")) % 3 - 1)
            for i, a in enumerate(done[key]["final"]["test_acc"])
        ]
    for key, loss in (("grid[std=0.0]", 3.0), ("grid[std=0.1]", 2.5), ("grid[std=1.0]", 1.0)):
        done[key]["cv"]["val_loss"] = [[loss, loss + 0.1, loss - 0.1]] * 6
        gains = acc_gain if key == "grid[std=1.0]" else [0.0, 0.0, 0.0]
        done[key]["cv"]["val_acc"] = [[0.6 + g for g in gains]] * 6
    return summarize(attrs, done)


def test_the_study_reports_a_failed_gain_check_as_no_noise_and_says_why() -> None:
    s = _study([0.02, -0.01, 0.0])
    sel, rec = s["selection"], s["recommendation"]
    assert sel["guard"] and sel["chosen_by"]["likelihood, 1-SE"] == 1.0
    assert sel["chosen"] == 0.0 and not sel["gain_check"]["passed"] and sel["gain_check"]["value"] == 1.0
    assert rec["status"] == "no_noise" and rec["cell"] is None
    assert "cannot tell that any noise helps" in rec["text"] and "std = 1" in rec["text"]
    assert "accuracy gain +0.0033" in rec["text"] and "does not lie above zero" in rec["text"]
    assert "gain check of 1: CV accuracy gain +0.0033" in selection_texts(sel)[0]
    assert "not above zero: no noise" in selection_texts(sel)[0]


def test_the_study_keeps_a_choice_whose_cv_gain_is_clear_and_cites_the_check() -> None:
    s = _study([0.05, 0.06, 0.05])
    sel, rec = s["selection"], s["recommendation"]
    assert sel["chosen"] == 1.0 and sel["gain_check"]["passed"]
    assert rec["status"] == "use" and rec["cell"] == "grid[std=1.0]"
    assert any("above zero, so the choice stands" in e for e in rec["evidence"])
