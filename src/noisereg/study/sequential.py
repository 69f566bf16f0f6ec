"""Anytime-valid comparisons over seeds: a confidence sequence for a paired mean difference, and the
decision of a sequential study after each round of seeds.

A t-test looked at after every round of seeds rejects a true "no difference" far more often than its
nominal level: each look is another chance. A *confidence sequence* (CS) is a sequence of intervals
CS_1, CS_2, ... that covers the true mean at every n at once with probability ≥ 1 − α, so a study may
look after every round and stop whenever it likes (Darling & Robbins 1967; Howard et al. 2021).

The CS here is the t-mixture CS of Lai (1976, "On confidence sequences", Ann. Statist. 4): for paired
differences d_1..d_n, i.i.d. normal with unknown mean μ and unknown variance, the Bayes factor of
"mean m + δσ" against "mean m", with a normal prior δ ~ N(0, g) on the standardized effect and the
scale-invariant prior 1/σ on σ, is (Rouder et al. 2009, eq. with fixed g; ν = n − 1)::

    E_n(m) = (1 + n·g)^(−1/2) · [ (1 + t²/(ν·(1 + n·g))) / (1 + t²/ν) ]^(−(ν+1)/2),
    t = (d̄ − m) / (s/√n)

With the right-Haar prior on σ this Bayes factor is a nonnegative martingale with E_1 = 1 under
mean m (Pérez-Ortiz, Lardy, de Heide & Grünwald 2024, "E-statistics, group invariance and anytime
valid testing", Ann. Statist.; the "safe t-test"), so by Ville's inequality
P(∃n: E_n(μ) ≥ 1/α) ≤ α, and CS_n = {m : E_n(m) < 1/α} covers μ at every n at once. E_n grows with
|t|, so CS_n is d̄ ± c_n·s/√n, where c_n solves E_n(c_n) = 1/α: a t-interval with a wider critical
value, paid for the freedom to look. E_n is at most (1 + n·g)^(ν/2) (reached as t → ∞), so below some
n no data can reach 1/α: c_n is infinite there (at α = 0.05, g = 1: n ≤ 4).

What it assumes: paired differences that are independent across seeds (they are: each seed is its
own replica) and close to normal. Test accuracies are discrete and bounded, so this is checked, not
assumed: ``benchmarks/sequential.py`` measures the false-positive rate on A/A comparisons resampled
from real per-seed results. A bounded-range betting CS (Waudby-Smith & Ramdas 2023) needs no
normality but, with a metric ranging over [−1, 1] and differences of a few hundredths, would need
hundreds of seeds to decide; the t-mixture adapts to the differences' own spread.

:func:`decide` turns the CS into a decision after each look (a round of seeds): ``better`` or
``worse`` when the CS excludes 0, ``equivalent`` when it lies inside (−margin, margin), else
``continue``, or ``max`` once the largest number of seeds is reached. It uses the intersection of the
CSs at all looks so far (an intersection of CSs is a CS) and stops at the first decisive look, so the
decision depends only on the seeds up to that look: replaying it on a fixed study's per-seed results
in seed order gives what a sequential run would have done. Torch-free.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.optimize import brentq

from noisereg.study.stats import ROUNDING, paired

__all__ = ["PRIOR_G", "mixture_e", "critical_t", "Decision", "decide", "interval"]

#: Prior variance g of the standardized effect δ = μ/σ (a unit-information prior): the CS is
#: tightest around n ≈ 1/(g·δ²) seeds, i.e. effects of about one standard deviation of the differences.
PRIOR_G = 1.0

Status = Literal["better", "worse", "equivalent", "continue", "max"]


def _check(n: int, alpha: float, g: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be in (0, 1)")
    if not (math.isfinite(g) and g > 0):
        raise ValueError(f"g={g!r} must be finite and > 0")


def mixture_e(t: float, n: int, g: float = PRIOR_G) -> float:
    """The e-value E_n of the module docstring for a t-statistic ``t`` on ``n`` paired differences
    (1 for n < 2: one difference says nothing about a mean whose scale is unknown; ``t = ±inf``,
    equal non-zero differences, gives the largest value (1 + n·g)^((n−1)/2)).

    >>> round(mixture_e(0.0, 4), 6)  # (1 + 4)^(-1/2)
    0.447214
    """
    _check(n, 0.5, g)
    if n < 2:
        return 1.0
    nu, k = n - 1, 1.0 + n * g
    x = t * t
    if math.isinf(x):  # equal non-zero differences, or a t beyond float range: the limit
        return k ** (nu / 2)
    log_e = -0.5 * math.log(k) - (nu + 1) / 2 * (math.log1p(x / (nu * k)) - math.log1p(x / nu))
    return math.exp(log_e)


def critical_t(n: int, alpha: float, g: float = PRIOR_G) -> float:
    """c_n: the |t| at which E_n reaches 1/α (inf where no t can: small n)."""
    _check(n, alpha, g)
    return _critical(n, alpha, g)


@functools.lru_cache(maxsize=4096)  # a pure function of three numbers, asked for again at every round
def _critical(n: int, alpha: float, g: float) -> float:
    if n < 2 or mixture_e(math.inf, n, g) < 1 / alpha:
        return math.inf
    target = math.log(1 / alpha)

    def gap(t: float) -> float:
        return math.log(mixture_e(t, n, g)) - target

    high = 1.0
    while gap(high) < 0:
        high *= 2
    return float(brentq(gap, 0.0, high, xtol=1e-12, rtol=1e-12))


def interval(diffs: Sequence[float], alpha: float, g: float = PRIOR_G) -> tuple[float, float]:
    """CS_n for the mean of ``diffs`` (n = its length): d̄ ± c_n·s/√n; (−inf, inf) where c_n is."""
    n = len(diffs)
    c = critical_t(n, alpha, g)
    if math.isinf(c):
        return (-math.inf, math.inf)
    d = np.asarray(diffs, dtype=np.float64)
    mean = float(d.mean())
    # stats.paired's rounding rule: differences whose spread is within rounding of their size are constant
    constant = float(np.ptp(d)) <= ROUNDING * np.finfo(np.float64).eps * float(np.abs(d).max())
    std = 0.0 if constant else float(d.std(ddof=1))
    half = c * std / math.sqrt(n)
    return (mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where a comparison stands: ``status``; ``n`` the seeds it used (its stopping point); ``look``
    the 1-based look (round) at which it stopped, or the last look made; ``low``/``high`` the
    running-intersection CS of the oriented difference (positive: better) at that look; ``by``:
    ``"cs"`` (the confidence sequence decided, or nothing did) or ``"final"`` (the t-test at the
    planned maximum did, with its p-value ``p_final``)."""

    status: Status
    n: int
    look: int
    low: float
    high: float
    by: Literal["cs", "final"] = "cs"
    p_final: float | None = None

    @property
    def decided(self) -> bool:
        return self.status != "continue"


def decide(
    diffs: Sequence[float],
    looks: Sequence[int],
    *,
    alpha: float,
    margin: float | None = None,
    max_n: int | None = None,
    final_alpha: float | None = None,
    tested_at: Sequence[int] = (),
    g: float = PRIOR_G,
) -> Decision:
    """The decision after the looks at seed counts ``looks`` (increasing, each ≤ len(diffs)) on the
    oriented paired differences ``diffs`` (positive: the arm is better), in seed order.

    Stops at the first look whose running CS (level 1 − ``alpha``) lies above 0 (``better``), below 0
    (``worse``) or inside (−margin, margin) (``equivalent``; only with a ``margin``); otherwise
    ``max`` once a look reaches ``max_n`` seeds, else ``continue``. ``final_alpha``: at the look
    that reaches ``max_n``, an undecided comparison is also given the paired t-test at that level
    (a test at one planned n, so the error rates add: alpha + final_alpha in all). ``tested_at``:
    earlier planned maxima (a study whose ``max`` was raised), where that t-test was made too and
    a verdict it gave stands; each adds ``final_alpha`` to the error rate.

    >>> decide([0.1, 0.12, 0.11, 0.1, 0.13, 0.1, 0.12, 0.11, 0.1, 0.12], [5, 10], alpha=0.05).status
    'better'
    """
    if not looks:
        raise ValueError("looks must name at least one seed count")
    if any(b <= a for a, b in zip(looks, looks[1:], strict=False)) or looks[-1] > len(diffs) or looks[0] < 1:
        raise ValueError(f"looks={list(looks)} must increase, from >= 1 to at most len(diffs)={len(diffs)}")
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin={margin!r} must be finite and > 0")
    low, high = -math.inf, math.inf
    for k, n in enumerate(looks, start=1):
        lo, hi = interval(diffs[:n], alpha, g)
        low, high = max(low, lo), min(high, hi)
        status: Status | None = None
        if low > 0:
            status = "better"
        elif high < 0:
            status = "worse"
        elif margin is not None and -margin < low and high < margin:
            status = "equivalent"
        elif final_alpha is not None and ((max_n is not None and n >= max_n) or n in tested_at):
            p = paired(list(diffs[:n]), [0.0] * n)["p_ttest"]
            if p is not None and float(p) < final_alpha:  # type: ignore[arg-type]
                better = float(np.mean(diffs[:n])) > 0
                return Decision("better" if better else "worse", n, k, low, high, "final", float(p))  # type: ignore[arg-type]
        if status is None and max_n is not None and n >= max_n:
            status = "max"
        if status is not None:
            return Decision(status, n, k, low, high)
    return Decision("continue", looks[-1], len(looks), low, high)
