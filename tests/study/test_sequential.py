"""The t-mixture confidence sequence (noisereg.study.sequential): hand computations, its error rate
under repeated looks, and the decisions of the rounds (noisereg.study.rounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from noisereg.study.rounds import Rounds, compare
from noisereg.study.sequential import critical_t, decide, interval, mixture_e


def test_the_e_value_by_hand() -> None:
    # n = 3, g = 1, t = 2: nu = 2, 1 + n*g = 4; E = 4^(-1/2) * ((1 + 4/8) / (1 + 4/2))^(-3/2) = 0.5 * 0.5^(-1.5) = sqrt(2)
    assert mixture_e(2.0, 3) == pytest.approx(math.sqrt(2), rel=1e-12)
    # t = 0: (1 + n g)^(-1/2); t -> inf: (1 + n g)^((n - 1)/2)
    assert mixture_e(0.0, 6) == pytest.approx(7**-0.5, rel=1e-12)
    assert mixture_e(math.inf, 6) == pytest.approx(7**2.5, rel=1e-12)
    assert mixture_e(1e300, 6) == pytest.approx(7**2.5, rel=1e-9)
    assert mixture_e(5.0, 1) == 1.0


def test_the_interval_by_hand() -> None:
    d = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    c = critical_t(6, 0.05)
    assert mixture_e(c, 6) == pytest.approx(20.0, rel=1e-9)  # E_n(c_n) = 1/alpha
    s = math.sqrt(3.5)  # sample standard deviation of 1..6
    low, high = interval(d, 0.05)
    assert (low, high) == pytest.approx((3.5 - c * s / math.sqrt(6), 3.5 + c * s / math.sqrt(6)), rel=1e-12)
    # wider than the fixed-n t-interval: the price of looking at every n
    assert c > sps.t.ppf(0.975, 5)
    # n = 4, g = 1: E is at most 5^1.5 = 11.2 < 20, so no data can decide
    assert critical_t(4, 0.05) == math.inf
    assert interval(d[:4], 0.05) == (-math.inf, math.inf)


def test_equal_differences_within_rounding_are_constant() -> None:
    low, high = interval([-0.09999999999999998, -0.10000000000000009] * 3, 0.05)
    assert high - low < 1e-12  # no spread: the interval is the mean; a decision comes from the bound on E alone


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=5, max_size=30), st.floats(0.001, 0.3))
def test_the_interval_covers_the_mean_and_shrinks_with_alpha(values: list[float], alpha: float) -> None:
    low, high = interval(values, alpha)
    mean = float(np.mean(values))
    assert low <= mean + 1e-12 and mean - 1e-12 <= high
    wide = interval(values, alpha / 2)
    assert wide[0] <= low + 1e-12 and high - 1e-12 <= wide[1]


def test_decisions() -> None:
    better = [0.1, 0.12, 0.11, 0.1, 0.13, 0.1, 0.12, 0.11, 0.1, 0.12]
    d = decide(better, [5, 10], alpha=0.05)
    assert (d.status, d.n, d.look) == ("better", 5, 1) and d.low > 0
    assert decide([-x for x in better], [5, 10], alpha=0.05).status == "worse"
    rng = np.random.default_rng(0)
    tiny = list(rng.normal(0, 0.001, 20))
    assert decide(tiny, [5, 10, 15, 20], alpha=0.05, margin=0.01).status == "equivalent"
    d = decide(tiny, [5, 10, 15, 20], alpha=0.05, max_n=20)
    assert (d.status, d.n, d.look) == ("max", 20, 4)
    assert decide(tiny, [5, 10], alpha=0.05, max_n=20).status == "continue"
    # a decision uses only the seeds up to its look: later seeds change nothing
    assert decide([*better[:5], -5.0, -5.0], [5, 7], alpha=0.05) == decide(better[:5], [5], alpha=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"looks": []}, "at least one"),
        ({"looks": [5, 5]}, "must increase"),
        ({"looks": [5, 11]}, "at most len"),
        ({"margin": -1.0}, "margin"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    args = {"looks": [5, 10], "alpha": 0.05, **kwargs}
    with pytest.raises(ValueError, match=match):
        decide([0.0] * 10, **args)


def _false_positives(rng: np.random.Generator, trials: int, looks: list[int], rule: str) -> int:
    """Sequences of i.i.d. N(0, 1) differences (no effect) that some look calls different."""
    hits = 0
    for _ in range(trials):
        d = rng.normal(0.0, 1.0, looks[-1])
        if rule == "cs":  # the runner's rule: half the alpha on the sequence, half on the final t-test
            rule_of = Rounds(looks[-1], looks[0], 0.05, None)
            hits += compare(list(d), looks, rule_of, 0.05).status in ("better", "worse")
        else:
            hits += any(sps.ttest_1samp(d[:n], 0.0).pvalue < 0.05 for n in looks)
    return hits


def test_aa_false_positive_rate_under_repeated_looks() -> None:
    """A/A: the sequential rule keeps its 5% under a look after every round of 5 seeds up to 30;
    a t-test looked at as often does not. Bounds: 4 binomial standard errors of 0.05 at 1000 trials."""
    trials, looks = 1000, [5, 10, 15, 20, 25, 30]
    bound = 4 * math.sqrt(0.05 * 0.95 / trials)
    cs = _false_positives(np.random.default_rng(1), trials, looks, "cs") / trials
    naive = _false_positives(np.random.default_rng(1), trials, looks, "t") / trials
    assert cs <= 0.05 + bound
    assert naive > 0.05 + bound  # why the runner does not look at t-tests


def test_the_final_look_adds_a_t_test_at_the_planned_maximum() -> None:
    d = [0.9, -0.2, 1.1, 0.3, 0.8, -0.1, 1.0, 0.4, 0.6, 0.2]  # mean 0.5, t = 3.3 on 10 seeds
    p = float(sps.ttest_1samp(d, 0.0).pvalue)
    assert p < 0.025
    plain = decide(d, [5, 10], alpha=0.025, max_n=10)
    assert plain.status == "max" and plain.low < 0 < plain.high  # the sequence alone cannot tell yet
    final = decide(d, [5, 10], alpha=0.025, max_n=10, final_alpha=0.025)
    assert (final.status, final.by, final.n) == ("better", "final", 10)
    assert final.p_final == pytest.approx(p, rel=1e-12)
    assert decide(d, [5, 10], alpha=0.025, max_n=10, final_alpha=p / 2).status == "max"
