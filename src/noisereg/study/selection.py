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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from noisereg._checks import check_int

__all__ = ["SCORES", "RULES", "fold_scores", "screened", "choose", "procedure_name"]

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


def choose(
    values: Sequence[float | None],
    cvs: Sequence[Mapping[str, Any] | None],
    *,
    score: str = "likelihood",
    rule: str = "best",
    seeds: int | None = None,
    screen: bool = True,
) -> int | None:
    """Index of the value chosen by the procedure (score, rule, seeds, screen); None if no value has
    the score. ``values[i]`` is a grid value and ``cvs[i]`` its cross-validation results (module
    docstring); values without results (None) are skipped. ``screen``: apply the accuracy screen
    (module docstring) to every score but ``accuracy``.

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
        return known[best][1]
    folds = known[best][2]
    se = float(folds.std(ddof=1) / math.sqrt(folds.size)) if folds.size > 1 else 0.0
    limit = means[best] + se
    return next(i for (_, i, _), m in zip(known, means, strict=True) if m <= limit)


def procedure_name(score: str, rule: str = "best", seeds: int | None = None, screen: bool = True) -> str:
    """A procedure's display name, e.g. ``likelihood, 1-SE, 3 seeds`` (no seed count for None;
    ``unscreened`` appended without the accuracy screen, which ``accuracy`` never has)."""
    _check(score, rule, seeds)
    parts = [score] + (["1-SE"] if rule == "one_se" else []) + ([f"{seeds} seed{'s' * (seeds != 1)}"] if seeds else [])
    parts += ["unscreened"] if not screen and score != "accuracy" else []
    return ", ".join(parts)
