"""Evidence over seeds: summaries with t-intervals, paired comparisons, Holm's correction, a verdict.

All functions take plain sequences of floats (one value per seed) and return plain dicts of floats,
None where a number is undefined (e.g. a standard deviation of one value), so that the results go
straight into JSON. No torch.

- :func:`summary_statistics`: n, mean, sample standard deviation s (ddof = 1), and the 95% t-interval
  mean ± t_{0.975, n−1}·s/√n.
- :func:`paired`: differences d_i = arm_i − baseline_i on the same seeds; mean and t-interval of d,
  the paired t-test (scipy ``ttest_rel``), the Wilcoxon signed-rank test (scipy ``wilcoxon``, zero
  differences dropped as in Wilcoxon's original method), the effect sizes Cohen's d_z = mean(d)/s_d
  and the matched-pairs rank-biserial correlation r = (W⁺ − W⁻)/(W⁺ + W⁻), and wins/ties/losses.
- :func:`holm`: Holm–Bonferroni adjusted p-values for a family of comparisons.
- :func:`iqm`: the interquartile mean (the mean of the middle 50% of the values, 25% trimmed at
  each end: Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", rliable) with a
  bootstrap interval over seeds.
- :func:`bootstrap_paired`: bootstrap intervals, resampling seeds as pairs, of the mean
  difference and of the probability of improvement P(arm better than baseline on a new seed): the
  share of seeds where the arm is better, ties counting ½.
- :func:`performance_profile`: the share of seeds scoring above each threshold (a score
  distribution, Agarwal et al. 2021's performance profile), for a plot of whole distributions.
- :func:`power`: for a two-sided paired t-test at level alpha on n seeds, the minimum detectable
  effect at 80% power (noncentral t) and the seeds that would detect a given effect.

Bootstrap intervals are *expanded percentile* intervals (``BOOTSTRAP_METHOD``; Hesterberg 2015,
"What teachers should know about the bootstrap", Amer. Statist. 69, §5.1): the percentile interval of
``scipy.stats.bootstrap`` taken at the level of :func:`expanded_confidence`, 1 − 2·Φ(−√(n/(n−1))·
t_{n−1, 0.975}) on n seeds, instead of 0.95. A plain percentile interval of a mean is, for many
resamples, about mean ± z·s·√((n−1)/n)/√n (a z-interval with the plug-in standard deviation), so it
covers a normal mean with probability P(|T_{n−1}| ≤ z_{0.975}·√((n−1)/n)): 0.90 on 10 seeds, 0.85
on 5. Expanding the level by those two factors makes it about mean ± t·s/√n, the t-interval, whose
coverage is 0.95; ``benchmarks/stats_selfcheck.py`` measures it for the difference, P(better) and the
IQM, on normal seeds and on accuracies of 70 test points (docs/evidence/benchmarks.md). No interval
confined to the range of the data (every percentile interval is) covers more than 1 − 2^(1−n) of the
time, since all n differences lie on one side of the truth with probability 2^(1−n) for a continuous
symmetric distribution: 0.9375 on 5 seeds. ``RESAMPLES`` resamples and a generator seeded by the
caller (the study seed), so that a report rebuilt from the same results gives the same intervals.

Differences equal within floating-point rounding are equal. Each difference d_i = a_i − b_i
inherits the rounding of its operands (0.9 − 0.8 carries an ulp of 0.9, not of 0.1), so a
difference within ``ROUNDING``·ε·max(|a_i|, |b_i|) of 0 is a tie, and differences whose spread
(max − min) is within ``ROUNDING``·ε·max_i(|a_i|, |b_i|) are constant: no t-test, no d_z, as for
exactly equal differences. Without this, two seeds differing by −0.09999999999999998 and
−0.10000000000000009 gave p = 3.5e-16 and d_z = −1.27e15. scipy warns of catastrophic cancellation
at max|d_i − d̄| < 10·ε·|d̄|, relative to the differences themselves; measured against the operands,
which is where the rounding comes from, ``ROUNDING`` = 32 covers a stored metric that is a mean
over a few dozen float64 values (each addition can add half an ulp) and the subtraction, while any
real difference between two test metrics (at least one test point in the test set) is ten or more
orders of magnitude larger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

__all__ = [
    "summary_statistics",
    "paired",
    "holm",
    "iqm",
    "bootstrap_paired",
    "power",
    "performance_profile",
    "CONFIDENCE",
    "ALPHA",
    "ROUNDING",
    "RESAMPLES",
    "POWER",
    "BOOTSTRAP_METHOD",
    "expanded_confidence",
]

CONFIDENCE = 0.95
#: The level below which a Holm-corrected p-value counts as a significant difference.
ALPHA = 0.05
#: Differences within this many machine epsilons of their operands' magnitude are equal (module docstring).
ROUNDING = 32
#: Bootstrap resamples: the Monte-Carlo error of a bound at the expanded level (0.85% in each tail on 10 seeds)
#: is then under 1% of the interval's width from 10 seeds on (about 1.5% on 5 seeds; normal approximation).
RESAMPLES = 9999
#: The power at which :func:`power` states the minimum detectable effect.
POWER = 0.8
#: The name of the bootstrap intervals' method, as ``summary.json`` and the report give it.
BOOTSTRAP_METHOD = "expanded percentile"


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr[~np.isfinite(arr)][:3].tolist()}")
    return arr


def _none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _interval(mean: float, std: float, n: int) -> list[float | None]:
    if n < 2:
        return [None, None]
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return [mean - half, mean + half]


def summary_statistics(values: Sequence[float]) -> dict[str, float | int | None | list[float | None]]:
    """n, mean, std (ddof = 1), ci95 [low, high] (t-interval), median, min, max of ``values``.

    Raises ``ValueError`` for an empty or non-finite input.

    >>> summary_statistics([1.0, 2.0, 3.0])["ci95"]  # doctest: +ELLIPSIS
    [-0.48..., 4.48...]
    """
    x = _finite(values, "values")
    if x.size == 0:
        raise ValueError("values must not be empty")
    n, mean = int(x.size), float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    return {
        "n": n,
        "mean": mean,
        "std": _none(std),
        "ci95": [_none(v) if v is not None else None for v in _interval(mean, std, n)],
        "median": float(np.median(x)),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def paired(arm: Sequence[float], baseline: Sequence[float]) -> dict[str, float | int | None | list[float | None]]:
    """Compare ``arm`` with ``baseline`` value by value (the same seeds in the same order).

    Returns n, mean_diff (arm − baseline), std_diff, ci95_diff, p_ttest, p_wilcoxon (two-sided),
    cohen_dz, rank_biserial, wins, ties, losses (arm above / equal to / below baseline). When every
    difference is 0 the p-values are 1 and the effect sizes 0; when all differences are equal but not
    0 the t-test and d_z are undefined (None); with fewer than 2 pairs the tests are None.
    Differences equal within rounding count as equal (``ROUNDING`` in the module docstring). Raises
    ``ValueError`` for sequences of different lengths or non-finite values.

    >>> paired([0.8, 0.7], [0.9, 0.8])["p_ttest"] is None  # −0.1 twice, up to rounding
    True
    """
    a, b = _finite(arm, "arm"), _finite(baseline, "baseline")
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"arm and baseline must have the same non-zero length, got {a.size} and {b.size}")
    d = a - b
    eps = np.finfo(np.float64).eps
    scale = np.maximum(np.abs(a), np.abs(b))
    d[np.abs(d) <= ROUNDING * eps * scale] = 0.0
    n, mean = int(d.size), float(d.mean())
    constant = n > 1 and float(d.max() - d.min()) <= ROUNDING * eps * float(scale.max())
    std = 0.0 if constant else float(d.std(ddof=1)) if n > 1 else math.nan
    out: dict[str, float | int | None | list[float | None]] = {
        "n": n,
        "mean_diff": mean,
        "std_diff": _none(std),
        "ci95_diff": [_none(v) if v is not None else None for v in _interval(mean, std, n)],
        "wins": int((d > 0).sum()),
        "ties": int((d == 0).sum()),
        "losses": int((d < 0).sum()),
    }
    nonzero = d[d != 0]
    if n < 2:
        out.update(p_ttest=None, p_wilcoxon=None, cohen_dz=None, rank_biserial=None)
    elif nonzero.size == 0:
        out.update(p_ttest=1.0, p_wilcoxon=1.0, cohen_dz=0.0, rank_biserial=0.0)
    else:
        p_t = float(sps.ttest_1samp(d, 0.0).pvalue) if std > 0 else None
        p_w = float(sps.wilcoxon(nonzero, zero_method="wilcox").pvalue)
        ranks = sps.rankdata(np.abs(nonzero))
        w_plus, w_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
        out.update(
            p_ttest=p_t,
            p_wilcoxon=p_w,
            cohen_dz=_none(mean / std) if std > 0 else None,
            rank_biserial=(w_plus - w_minus) / (w_plus + w_minus),
        )
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (None entries are passed through and not counted).

    p_(i) sorted ascending among m values: adj_(i) = max_{j <= i} min(1, (m − j + 1)·p_(j)).

    >>> holm([0.25, 0.5, 0.125])
    [0.5, 0.5, 0.375]
    """
    present = {i: float(p) for i, p in enumerate(pvalues) if p is not None}
    for i, p in present.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"pvalues[{i}]={pvalues[i]!r} must be in [0, 1]")
    order = sorted(present, key=present.__getitem__)
    m = len(order)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * present[i]))
        out[i] = running
    return out


def expanded_confidence(n: int, confidence: float = CONFIDENCE) -> float:
    """The level at which the percentile bootstrap of n values is taken for a ``confidence`` interval
    (the module docstring): 1 − 2·Φ(−√(n/(n−1))·t_{n−1, (1+confidence)/2}).

    >>> round(expanded_confidence(10), 4)  # a 98.3% percentile interval for a 95% one on 10 seeds
    0.9829
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n={n!r} must be an int >= 2")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    t = float(sps.t.ppf(0.5 + confidence / 2, n - 1))
    # 1 − 2·sf rather than 1 − 2·cdf(−x): the same number, and it stays below 1 down to n = 3
    return 1.0 - 2.0 * float(sps.norm.sf(math.sqrt(n / (n - 1)) * t))


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Any, seed: int) -> list[float | None]:
    """The 95% expanded percentile bootstrap interval of ``statistic`` over the resampled seeds
    (paired rows)."""
    if data[0].size < 2:
        return [None, None]
    res = sps.bootstrap(
        data,
        statistic,
        n_resamples=RESAMPLES,
        paired=len(data) > 1,
        vectorized=True,
        confidence_level=expanded_confidence(int(data[0].size)),
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [_none(res.confidence_interval.low), _none(res.confidence_interval.high)]


def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(sps.trim_mean(x, 0.25, axis=axis))


def iqm(values: Sequence[float], *, seed: int = 0) -> dict[str, float | str | list[float | None]]:
    """The interquartile mean of ``values`` (``scipy.stats.trim_mean(values, 0.25)``: with n values,
    ⌊n/4⌋ dropped at each end) and its 95% expanded percentile bootstrap interval (``ci95``; None
    below 2 values; ``method``: ``BOOTSTRAP_METHOD``).

    >>> iqm([0.0, 1.0, 2.0, 3.0, 100.0, -100.0, 1.5, 2.5])["iqm"]  # the middle four
    1.75
    """
    x = _finite(values, "values")
    if x.size == 0:
        raise ValueError("values must not be empty")
    return {"iqm": float(_iqm(x)), "ci95": _bootstrap((x,), _iqm, seed), "method": BOOTSTRAP_METHOD}


def _improvement_score(d: np.ndarray, higher: bool) -> np.ndarray:
    return np.where(d == 0, 0.5, ((d > 0) == higher).astype(np.float64))


def bootstrap_paired(
    arm: Sequence[float], baseline: Sequence[float], *, higher: bool = True, seed: int = 0
) -> dict[str, float | int | str | None | list[float | None]]:
    """Bootstrap over seeds (pairs resampled together) for ``arm`` against ``baseline``: 95% expanded
    percentile intervals (module docstring).

    Returns ``ci95_diff`` (of the mean of arm − baseline), ``p_improvement`` (the share of seeds on
    which the arm is better — higher, or lower with ``higher=False`` — ties counting ½, differences
    within rounding being ties as in :func:`paired`), its ``ci95_improvement``, ``method``
    (``BOOTSTRAP_METHOD``), ``resamples`` and ``seed``. Intervals are None with fewer than 2 pairs.

    >>> bootstrap_paired([0.8, 0.9, 0.7], [0.7, 0.9, 0.8])["p_improvement"]  # a win, a tie, a loss
    0.5
    """
    a, b = _finite(arm, "arm"), _finite(baseline, "baseline")
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"arm and baseline must have the same non-zero length, got {a.size} and {b.size}")
    scale = np.maximum(np.abs(a), np.abs(b))

    def difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    def improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        d = x - y
        # the same rounding tolerance as paired(); the scale is the largest operand of the sample
        d = np.where(np.abs(d) <= ROUNDING * np.finfo(np.float64).eps * scale.max(), 0.0, d)
        return np.mean(_improvement_score(d, higher), axis=axis)

    return {
        "ci95_diff": _bootstrap((a, b), difference, seed),
        "p_improvement": float(improvement(a, b)),
        "ci95_improvement": _bootstrap((a, b), improvement, seed),
        "method": BOOTSTRAP_METHOD,
        "resamples": RESAMPLES,
        "seed": seed,
    }


def _power(dz: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test of n differences at standardized effect d_z."""
    df, nc = n - 1, dz * math.sqrt(n)
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    # P(T < −crit) as the upper tail of −T: scipy's lower tail is NaN where it underflows (df = 1, nc = 8)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc))


def power(
    std_diff: float | None, n: int, *, effect: float | None = None, alpha: float = ALPHA, target: float = POWER
) -> dict[str, float | int | None]:
    """What a two-sided paired t-test at level ``alpha`` on ``n`` seeds can detect, with the
    differences' standard deviation ``std_diff`` taken as the true one.

    The power at standardized effect δ = Δ/σ_d is P(|T| > t_{1−α/2, n−1}) with T noncentral t
    (n − 1 degrees of freedom, noncentrality δ·√n). Returns ``alpha``, ``power`` (the target),
    ``mde_dz`` (the smallest δ with that power, by root finding), ``mde`` (= mde_dz·std_diff, in the
    metric's units) and ``seeds_needed`` (the fewest seeds, at least 2, whose test has that power
    at ``effect``; None for no effect or none within 10⁶ seeds). Everything is None where it is
    undefined (fewer than 2 seeds, no spread).

    >>> round(power(1.0, 10)["mde_dz"], 3)  # a textbook value: d_z ≈ 1.0 needs ~10 pairs
    0.996
    """
    out: dict[str, float | int | None] = {"alpha": alpha, "power": target, "mde_dz": None, "mde": None}
    out["seeds_needed"] = None
    if n < 2 or std_diff is None or not std_diff > 0:
        return out
    high = 1.0
    while _power(high, n, alpha) < target:
        high *= 2
    mde_dz = float(brentq(lambda dz: _power(dz, n, alpha) - target, 0.0, high, xtol=1e-12))
    out.update(mde_dz=mde_dz, mde=mde_dz * std_diff)
    if effect is not None and effect != 0:
        dz = abs(effect) / std_diff
        lo, hi = 2, 2
        while _power(dz, hi, alpha) < target:
            if hi >= 10**6:
                return out
            lo, hi = hi, hi * 2
        while lo < hi:  # the power rises with n: the fewest seeds by bisection
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if _power(dz, mid, alpha) < target else (lo, mid)
        out["seeds_needed"] = hi
    return out


def performance_profile(values: Sequence[float], thresholds: Sequence[float], *, higher: bool = True) -> list[float]:
    """For each threshold τ the share of ``values`` strictly better than τ: above it, or below it
    with ``higher=False`` (a loss). A step function of τ, from 1 below every value to 0 above them.

    >>> performance_profile([0.6, 0.7, 0.7, 0.9], [0.5, 0.7, 0.9])
    [1.0, 0.25, 0.0]
    """
    x, t = _finite(values, "values"), _finite(thresholds, "thresholds")
    if x.size == 0:
        raise ValueError("values must not be empty")
    better = x[None, :] > t[:, None] if higher else x[None, :] < t[:, None]
    return [float(v) for v in better.mean(axis=1)]
