"""Evidence over seeds against scipy and hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from noisereg.study.stats import ROUNDING, holm, paired, summary_statistics

A = [0.81, 0.79, 0.84, 0.80, 0.83, 0.78, 0.82, 0.85]
B = [0.76, 0.77, 0.80, 0.74, 0.79, 0.78, 0.75, 0.80]


def test_describe_matches_scipy_t_interval() -> None:
    d = summary_statistics(A)
    lo, hi = sps.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sps.sem(A))
    assert d["n"] == 8 and d["mean"] == pytest.approx(np.mean(A), abs=1e-15)
    assert d["std"] == pytest.approx(np.std(A, ddof=1), abs=1e-15)
    assert d["ci95"] == pytest.approx([lo, hi], abs=1e-14)
    assert (d["min"], d["max"], d["median"]) == (0.78, 0.85, pytest.approx(np.median(A)))


def test_describe_of_one_value_has_no_spread() -> None:
    assert summary_statistics([0.5]) == {
        "n": 1,
        "mean": 0.5,
        "std": None,
        "ci95": [None, None],
        "median": 0.5,
        "min": 0.5,
        "max": 0.5,
    }
    with pytest.raises(ValueError, match="empty"):
        summary_statistics([])
    with pytest.raises(ValueError, match="finite"):
        summary_statistics([1.0, math.nan])


def test_paired_matches_scipy_tests() -> None:
    p = paired(A, B)
    d = np.subtract(A, B)
    assert p["mean_diff"] == pytest.approx(d.mean(), abs=1e-15)
    assert p["p_ttest"] == pytest.approx(sps.ttest_rel(A, B).pvalue, rel=1e-12)
    assert p["p_wilcoxon"] == pytest.approx(sps.wilcoxon(d[d != 0]).pvalue, rel=1e-12)
    assert p["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert p["ci95_diff"] == pytest.approx([lo, hi], abs=1e-14)
    assert (p["wins"], p["ties"], p["losses"]) == (7, 1, 0)
    ranks = sps.rankdata(np.abs(d[d != 0]))
    w_plus, w_minus = ranks[d[d != 0] > 0].sum(), ranks[d[d != 0] < 0].sum()
    assert p["rank_biserial"] == pytest.approx((w_plus - w_minus) / (w_plus + w_minus))


def test_paired_identical_arms_and_constant_shifts() -> None:
    same = paired(A, A)
    assert (same["p_ttest"], same["p_wilcoxon"], same["cohen_dz"], same["mean_diff"]) == (1.0, 1.0, 0.0, 0.0)
    shifted = paired([a + 0.25 for a in B], B)
    assert shifted["p_ttest"] is None and shifted["cohen_dz"] is None and shifted["wins"] == len(B)
    assert paired([1.0], [0.0])["p_ttest"] is None
    with pytest.raises(ValueError, match="same non-zero length"):
        paired(A, B[:-1])


@pytest.mark.filterwarnings("error")  # scipy must not see the rounding-level spread
def test_differences_equal_up_to_rounding_are_constant() -> None:
    # The two seeds: paired differences −0.09999999999999998 and −0.10000000000000009.
    near = paired([0.8, 0.7], [0.9, 0.8])
    assert np.subtract([0.8, 0.7], [0.9, 0.8]).std() > 0  # the raw floats do differ
    exact = paired([0.8, 0.8], [0.9, 0.9])
    for p in (near, exact):
        assert p["p_ttest"] is None and p["cohen_dz"] is None and p["std_diff"] == 0.0
        assert p["losses"] == 2 and p["mean_diff"] == pytest.approx(-0.1, abs=1e-15)
    # Spread twice the tolerance: a real (if tiny) difference, tested as scipy tests it.
    step = 2 * ROUNDING * np.finfo(np.float64).eps * 0.9
    a, b = [0.8, 0.8 + step], [0.9, 0.9]
    above = paired(a, b)
    assert above["std_diff"] > 0
    assert above["p_ttest"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)


def test_differences_within_rounding_of_zero_are_ties() -> None:
    p = paired([0.1 + 0.2, 0.5], [0.3, 0.5])  # 0.1 + 0.2 − 0.3 = 5.6e-17
    assert (p["wins"], p["ties"], p["losses"]) == (0, 2, 0)
    assert (p["p_ttest"], p["cohen_dz"], p["mean_diff"]) == (1.0, 0.0, 0.0)


def test_holm_against_the_step_down_definition() -> None:
    p = [0.01, 0.04, 0.03, None, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, None, 0.5])
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"pvalues\[0\]"):
        holm([1.5])
