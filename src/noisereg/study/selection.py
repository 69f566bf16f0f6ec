"""Choosing a noise strength from cross-validation results: the procedures that
``benchmarks/selection.py`` compares, as functions of stored per-fold scores (no torch).

A grid value's cross-validation results are a mapping of arrays over S training seeds × K folds
(each fold's held-out part, scored with the weights at the end of training):

- ``val_loss`` [S, K]: mean held-out loss (log-loss for classifiers, squared error for regression:
  minus the log-likelihood up to constants);
- ``val_acc`` [S, K]: held-out accuracy; ``val_brier`` [S, K]: mean Brier score
  Σ_c (p_c − 1[y = c])² (a bounded proper scoring rule: a confident mistake costs at most 2);
- ``val_loss_calibrated`` [S, K]: log-loss after one temperature T per seed, fitted on that seed's
  pooled held-out predictions (logits / T);
- ``val_loss_curve`` [S, K, E]: held-out loss at each evaluated epoch.

A procedure is a score, a rule and a number of seeds:

- score ``likelihood`` (val_loss, lower is better; Holmstrom & Koistinen 1992), ``accuracy``
  (higher), ``brier`` (lower), ``calibrated`` (val_loss_calibrated, lower) or ``early`` (the
  held-out loss at the epoch where its mean over seeds and folds is lowest: the likelihood of the
  early-stopped prediction);
- rule ``best`` (the best mean over seeds × folds; exact ties go to the smallest value) or
  ``one_se`` (the smallest value whose mean is within one standard error of the best mean, the
  standard error being that of the best value's K seed-averaged fold scores: among choices the data
  cannot tell apart, the least noise);
- ``seeds``: use the first ``seeds`` training seeds only (None: all).

The accuracy screen (``screen=True``, the default; classifiers, every score but ``accuracy``): a value
whose mean CV accuracy is more than ``SCREEN_SE`` = 2 standard errors below the best value's (the
standard error of that value's K seed-averaged fold accuracies, as in ``one_se``) cannot be chosen.
Without it a likelihood-type score can prefer a network that predicts the class frequencies over
networks that classify better but are overconfident: on the reference case study (4000 epochs, 30
points) every trained value's held-out log-loss is above the constant predictor's log 2, and
likelihood chose σ = 3, whose test accuracy is below chance. Two standard errors, not one: on the 24
problems of ``benchmarks/selection.py`` a screen of 2 changes no choice of the likelihood rules, while
one standard error moved a choice away from the best value (see the table on the docs' selection benchmark page).

The gain check (``guard=True``; the study's default, ``[selection] guard``): the chosen value is kept
only where the cross-validation shows it beats no noise in what the study is judged by — the paired
per-fold gain in held-out accuracy (classifiers) or squared error (regression) has a one-sided 95%
lower bound above zero (:func:`gain_check`); otherwise the choice is no noise. Why: the likelihood
rewards calibration as well as classification, and a network trained with heavy noise has much smaller
logits, so on small multi-class problems the likelihood prefers heavy noise that classifies no better
or worse. On issue 24's failure (4 classes, 10 features, 100 training points, input noise), σ = 1 had
CV log-loss 1.08 against 3.25 without noise, CV accuracy 0.574 against 0.560 (a gain of 0.014,
t = 0.8 over 5 folds), and was 0.023 worse on test (paired p 9e-8). Neither the fold size (the issue
measured σ = 1 already worse at the folds' 80 training points), the grid's edge (σ = 1 was not the
largest value; leaving out the largest left both harmful tuning choices as they were) nor the CV seeds
(1, 3, 5 or 10 chose σ = 1 alike) explained it; the gain check did, and it also left out the one other
harmful choice of the tuning family (circles, 30 points, 10% flipped labels: σ = 0.3, −0.02), at the price of part of the
gain where noise helps (``benchmarks/selection.py``; docs' selection benchmark page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

from noisereg._checks import check_int

__all__ = ["SCORES", "RULES", "fold_scores", "screened", "gain_check", "gain_words", "choose", "procedure_name"]

Score = Literal["likelihood", "accuracy", "brier", "calibrated", "early"]
Rule = Literal["best", "one_se"]
SCORES: dict[str, tuple[str, bool]] = {
    "likelihood": ("val_loss", False),
    "accuracy": ("val_acc", True),
    "brier": ("val_brier", False),
    "calibrated": ("val_loss_calibrated", False),
    "early": ("val_loss_curve", False),
}
"""score name -> (stored key, higher is better)."""
RULES = ("best", "one_se")
SCREEN_SE = 2.0
"""How many standard errors below the best CV accuracy the accuracy screen still keeps a value."""
GUARD_CONFIDENCE = 0.90
"""The level of the two-sided t-interval of the CV gain over no noise that the gain check requires
above zero: its lower end is a one-sided 95% bound (a one-sided paired t-test at 5%)."""


def _check(score: str, rule: str, seeds: int | None) -> None:
    if score not in SCORES:
        raise ValueError(f"score={score!r} must be one of {sorted(SCORES)}")
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} must be one of {list(RULES)}")
    if seeds is not None:
        check_int(seeds, "seeds", low=1)


def fold_scores(cv: Mapping[str, Any] | None, score: str, seeds: int | None = None) -> np.ndarray | None:
    """The K per-fold scores of one grid value, each the mean over its first ``seeds`` seeds,
    oriented so that lower is better (accuracy is negated); None when ``cv`` lacks the score.

    >>> fold_scores({"val_acc": [[0.5, 1.0], [1.0, 1.0]]}, "accuracy").tolist()
    [-0.75, -1.0]
    >>> fold_scores({"val_loss_curve": [[[3.0, 1.0, 2.0]], [[3.0, 3.0, 2.0]]]}, "early").tolist()
    [2.0]
    """
    _check(score, "best", seeds)
    key, higher = SCORES[score]
    if not cv or cv.get(key) is None:
        return None
    arr = np.asarray(cv[key], dtype=np.float64)
    if arr.size == 0:
        return None
    arr = arr[:seeds]
    if score == "early":
        if arr.ndim != 3:
            raise ValueError(f"{key} must be [seeds, folds, epochs], got shape {arr.shape}")
        epoch = int(np.nanargmin(np.nanmean(arr, axis=(0, 1))))
        arr = arr[..., epoch]
    elif arr.ndim != 2:
        raise ValueError(f"{key} must be [seeds, folds], got shape {arr.shape}")
    per_fold = arr.mean(axis=0)
    return -per_fold if higher else per_fold


def screened(
    values: Sequence[float | None], cvs: Sequence[Mapping[str, Any] | None], seeds: int | None = None
) -> list[bool]:
    """Per value, whether the accuracy screen (module docstring) keeps it: its mean CV accuracy is at
    least the best mean minus ``SCREEN_SE`` standard errors of the best value's K seed-averaged fold
    accuracies.
    Every value is kept when some value with results has no accuracy (regression) or no value has one.

    >>> cvs = [{"val_acc": [[0.8, 0.9]]}, {"val_acc": [[0.8, 0.8]]}, {"val_acc": [[0.5, 0.6]]}]
    >>> screened([0.0, 0.1, 1.0], cvs)  # best 0.85, 2 se 0.10: 0.80 is within, 0.55 not
    [True, True, False]
    """
    accs = [fold_scores(cv, "accuracy", seeds) if v is not None else None for v, cv in zip(values, cvs, strict=True)]
    known = [a for a, v in zip(accs, values, strict=True) if v is not None and a is not None and np.all(np.isfinite(a))]
    if not known or len(known) < sum(v is not None for v in values):
        return [True] * len(values)
    means = [float(a.mean()) for a in known]
    best = known[int(np.argmin(means))]  # scores are negated accuracies: lower is better
    se = float(best.std(ddof=1) / math.sqrt(best.size)) if best.size > 1 else 0.0
    limit = min(means) + SCREEN_SE * se
    return [a is None or bool(np.all(np.isfinite(a))) and float(a.mean()) <= limit for a in accs]


def _gain_folds(cv: Mapping[str, Any] | None, metric: str, seeds: int | None) -> np.ndarray | None:
    arr = None if not cv or cv.get(metric) is None else np.asarray(cv[metric], dtype=np.float64)[:seeds]
    if arr is None or arr.ndim != 2 or arr.size == 0 or not np.all(np.isfinite(arr)):
        return None
    return arr.mean(axis=0)


def gain_check(
    values: Sequence[float | None],
    cvs: Sequence[Mapping[str, Any] | None],
    index: int,
    *,
    seeds: int | None = None,
    corrected: bool = False,
    confidence: float = GUARD_CONFIDENCE,
) -> dict[str, Any] | None:
    """Whether the cross-validation shows that ``values[index]`` beats no noise (the grid's value 0).

    The gain is measured in what the study is judged by: held-out accuracy for classifiers, minus the
    held-out loss (squared error) for regression. Per fold, the gain is the difference of the two
    values' scores averaged over the first ``seeds`` seeds (the same folds, so the differences are
    paired); over the K folds, the mean gain ḡ and its ``confidence`` t-interval ḡ ± t_{K−1}·s/√K, or
    with ``corrected`` ḡ ± t_{K−1}·s·√(1/K + 1/(K−1)) (Nadeau & Bengio 2003's correction for the overlap
    of the folds' training sets, whose held-out part is 1/(K−1) of the training part). ``passed``: the
    whole interval lies above zero. The defaults (uncorrected, 90%: a one-sided paired t-test at 5%)
    are what ``benchmarks/selection.py`` supports: the corrected interval, or 95%, left no noise on
    almost no problem, and gave up most of the gain where noise helps.

    Returns ``{"value", "metric" ("accuracy" | "loss"), "gain", "ci", "folds", "corrected",
    "confidence", "passed"}``, or None where there is nothing to check: the value is 0 or None, the grid
    has no 0, or a value lacks the fold scores.

    >>> cvs = [{"val_acc": [[0.60, 0.70, 0.60, 0.65, 0.70]]}, {"val_acc": [[0.70, 0.75, 0.70, 0.70, 0.80]]}]
    >>> g = gain_check([0.0, 0.1], cvs, 1)  # gain 0.08, sd 0.027 over 5 folds
    >>> g["passed"], round(g["gain"], 3), [round(x, 3) for x in g["ci"]]
    (True, 0.08, [0.054, 0.106])
    >>> gain_check([0.0, 0.1], [cvs[0], {"val_acc": [[0.55, 0.80, 0.70, 0.60, 0.75]]}], 1)["passed"]
    False
    """
    if not 0 <= index < len(values):
        raise ValueError(f"index={index!r} must index values (length {len(values)})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    value = values[index]
    zero = next((i for i, v in enumerate(values) if v is not None and float(v) == 0.0), None)
    if value is None or float(value) == 0.0 or zero is None:
        return None
    classifier = all(cv is not None and cv.get("val_acc") is not None for cv in (cvs[index], cvs[zero]))
    metric = "accuracy" if classifier else "loss"
    key, sign = ("val_acc", 1.0) if classifier else ("val_loss", -1.0)
    chosen, base = _gain_folds(cvs[index], key, seeds), _gain_folds(cvs[zero], key, seeds)
    if chosen is None or base is None or chosen.shape != base.shape:
        return None
    gains = sign * (chosen - base)
    k, mean = int(gains.size), float(gains.mean())
    if k < 2:
        ci = [mean, mean]
    else:
        se = float(gains.std(ddof=1)) * math.sqrt(1 / k + (1 / (k - 1) if corrected else 0.0))
        half = float(sps.t.ppf(0.5 + confidence / 2, k - 1)) * se
        ci = [mean - half, mean + half]
    return {
        "value": float(value),
        "metric": metric,
        "gain": mean,
        "ci": ci,
        "folds": k,
        "corrected": corrected,
        "confidence": confidence,
        "passed": bool(ci[0] > 0),
    }


def gain_words(check: Mapping[str, Any], param: str | None, procedure: str) -> str:
    """A :func:`gain_check` result in words, for the report: the value ``procedure`` chose, its gain
    over no noise on the same folds and the interval.

    >>> gain_words({"value": 1.0, "metric": "accuracy", "gain": 0.01, "ci": [-0.02, 0.04], "folds": 5,
    ...             "confidence": 0.9}, "std", "likelihood, 1-SE").split("; ")[1]
    'the gain check compares that value with no noise on the same CV folds: held-out accuracy gain +0.0100, 90% t-interval [-0.02, 0.04] over 5 folds'
    """
    lo, hi = check["ci"]
    what = "accuracy" if check["metric"] == "accuracy" else "squared error (lower is better; shown as its decrease)"
    return (
        f"Its criterion ({procedure}) chose {param or 'the value'} = {check['value']:g}; the gain check "
        f"compares that value with no noise on the same CV folds: held-out {what} gain {check['gain']:+.4f}, "
        f"{check['confidence']:.0%} t-interval [{lo:.3g}, {hi:.3g}] over {check['folds']} folds"
    )


def choose(
    values: Sequence[float | None],
    cvs: Sequence[Mapping[str, Any] | None],
    *,
    score: str = "likelihood",
    rule: str = "best",
    seeds: int | None = None,
    screen: bool = True,
    guard: bool = False,
) -> int | None:
    """Index of the value chosen by the procedure (score, rule, seeds, screen, guard); None if no value
    has the score. ``values[i]`` is a grid value and ``cvs[i]`` its cross-validation results (module
    docstring); values without results (None) are skipped. ``screen``: apply the accuracy screen
    (module docstring) to every score but ``accuracy``. ``guard``: the gain check (module docstring,
    :func:`gain_check`): where the cross-validation does not show that the value beats no noise, the
    index of no noise (the grid's 0) instead.

    >>> cvs = [{"val_loss": [[0.50, 0.50]]}, {"val_loss": [[0.38, 0.40]]}, {"val_loss": [[0.30, 0.40]]}]
    >>> choose([0.0, 0.1, 0.3], cvs)
    2
    >>> choose([0.0, 0.1, 0.3], cvs, rule="one_se")  # best 0.35, se 0.05: 0.39 is within, 0.50 not
    1
    >>> overconfident = [{"val_loss": [[3.8, 2.0]], "val_acc": [[0.8, 0.9]]}, {"val_loss": [[0.69, 0.69]], "val_acc": [[0.5, 0.5]]}]
    >>> choose([0.0, 3.0], overconfident), choose([0.0, 3.0], overconfident, screen=False)
    (0, 1)
    """
    _check(score, rule, seeds)
    if len(values) != len(cvs):
        raise ValueError(f"values and cvs must have the same length, got {len(values)} and {len(cvs)}")
    keep = screened(values, cvs, seeds) if screen and score != "accuracy" else [True] * len(values)
    known = []
    for i, (v, cv) in enumerate(zip(values, cvs, strict=True)):
        folds = fold_scores(cv, score, seeds) if v is not None and keep[i] else None
        if folds is not None and np.all(np.isfinite(folds)):
            known.append((float(v), i, folds))  # type: ignore[arg-type]
    if not known:
        return None
    known.sort(key=lambda t: t[0])
    means = [float(f.mean()) for _, _, f in known]
    best = int(np.argmin(means))  # first of exact ties: the smallest value
    if rule == "best":
        chosen = known[best][1]
    else:
        folds = known[best][2]
        se = float(folds.std(ddof=1) / math.sqrt(folds.size)) if folds.size > 1 else 0.0
        limit = means[best] + se
        chosen = next(i for (_, i, _), m in zip(known, means, strict=True) if m <= limit)
    check = gain_check(values, cvs, chosen, seeds=seeds) if guard else None
    if check is not None and not check["passed"]:
        return next(i for i, v in enumerate(values) if v is not None and float(v) == 0.0)
    return chosen


def procedure_name(
    score: str, rule: str = "best", seeds: int | None = None, screen: bool = True, guard: bool = False
) -> str:
    """A procedure's display name, e.g. ``likelihood, 1-SE, 3 seeds`` (no seed count for None;
    ``unscreened`` appended without the accuracy screen, which ``accuracy`` never has; ``gain check``
    with the guard)."""
    _check(score, rule, seeds)
    parts = [score] + (["1-SE"] if rule == "one_se" else []) + ([f"{seeds} seed{'s' * (seeds != 1)}"] if seeds else [])
    parts += ["unscreened"] if not screen and score != "accuracy" else []
    parts += ["gain check"] if guard else []
    return ", ".join(parts)
