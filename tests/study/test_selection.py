"""Selection procedures on hand-computed cross-validation results (exact)."""

from __future__ import annotations

import pytest

from noisereg.study.selection import choose, fold_scores, procedure_name, screened

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
