"""Evidence over seeds against scipy and hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from noisereg.study.stats import (
    ALPHA,
    BOOTSTRAP_METHOD,
    RESAMPLES,
    ROUNDING,
    bootstrap_paired,
    expanded_confidence,
    holm,
    iqm,
    paired,
    performance_profile,
    power,
    summary_statistics,
)

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


def _power_by_hand(dz: float, n: int, alpha: float = 0.05) -> float:
    crit = sps.t.ppf(1 - alpha / 2, n - 1)
    nc = dz * math.sqrt(n)
    return sps.nct.sf(crit, n - 1, nc) + np.nan_to_num(sps.nct.cdf(-crit, n - 1, nc))  # NaN: underflow


@pytest.mark.parametrize("n", [2, 3, 10, 30])
def test_minimum_detectable_effect_against_a_direct_search(n: int) -> None:
    step = 1e-4
    grid = np.arange(step, 20.0, step)
    powers = np.array([_power_by_hand(dz, n) for dz in grid[:: int(0.01 / step)]])  # coarse, then fine
    start = grid[:: int(0.01 / step)][np.argmax(powers >= 0.8) - 1]
    fine = np.arange(start, start + 0.011, step)
    found = fine[np.argmax([_power_by_hand(dz, n) >= 0.8 for dz in fine])]
    out = power(0.02, n)
    assert out["mde_dz"] == pytest.approx(found, abs=step) and out["mde"] == pytest.approx(0.02 * out["mde_dz"])
    assert (out["alpha"], out["power"]) == (0.05, 0.8)


def test_seeds_needed_is_the_fewest_with_80_percent_power() -> None:
    # d_z = 0.5: the textbook paired-t sample size at alpha 0.05, power 0.8, is 34 pairs.
    out = power(0.02, 8, effect=-0.01)
    assert out["seeds_needed"] == 34
    assert _power_by_hand(0.5, 33) < 0.8 <= _power_by_hand(0.5, 34)
    assert power(0.02, 8, effect=0.0)["seeds_needed"] is None
    assert power(0.0, 8, effect=0.01) == {
        "alpha": 0.05,
        "power": 0.8,
        "mde_dz": None,
        "mde": None,
        "seeds_needed": None,
    }
    assert power(0.02, 1)["mde"] is None


def _tails(n: int) -> list[float]:
    """The percentiles (in %) of an expanded percentile interval on n values."""
    level = expanded_confidence(n)
    return [50 * (1 - level), 50 * (1 + level)]


def test_expanded_level_by_hand() -> None:
    # Hesterberg's level 1 − 2·Φ(−√(n/(n−1))·t_{n−1, 0.975}) from table values: t_{3, 0.975} = 3.182446,
    # t_{9, 0.975} = 2.262157, and 2·Φ(−x) = erfc(x/√2).
    assert expanded_confidence(4) == pytest.approx(1 - math.erfc(3.182446 * math.sqrt(4 / 3) / math.sqrt(2)), abs=1e-8)
    assert expanded_confidence(10) == pytest.approx(
        1 - math.erfc(2.262157 * math.sqrt(10 / 9) / math.sqrt(2)), abs=1e-7
    )
    assert 1 - expanded_confidence(4) == pytest.approx(2.3806e-4, rel=1e-3)  # 0.012% in each tail
    assert expanded_confidence(10_000) == pytest.approx(0.95, abs=1e-4)  # no expansion for many values
    for bad in (1, 2.0, True):
        with pytest.raises(ValueError, match="n="):
            expanded_confidence(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confidence=1.0"):
        expanded_confidence(5, 1.0)


def test_four_seeds_give_the_range_of_the_differences() -> None:
    # On 4 seeds the expanded level leaves 0.012% of the 9999 resampled means (1.2 of them) in each tail,
    # while the resample that draws the smallest difference 4 times has probability 1/256 (about 39 of
    # them): both ends of the interval are resamples of one seed, the smallest and largest difference.
    a, b = np.array([0.81, 0.79, 0.84, 0.80]), np.array([0.76, 0.79, 0.80, 0.74])
    out = bootstrap_paired(a, b, seed=3)
    d = a - b
    assert out["ci95_diff"] == pytest.approx([d.min(), d.max()], abs=1e-15)
    assert out["method"] == BOOTSTRAP_METHOD == "expanded percentile"
    # scores 1, ½ (the tie), 1, 1: from all ½ to all 1
    assert out["p_improvement"] == pytest.approx(3.5 / 4) and out["ci95_improvement"] == pytest.approx([0.5, 1.0])


def test_paired_bootstrap_is_a_percentile_interval_at_the_expanded_level() -> None:
    a, b = np.array([0.81, 0.79, 0.84, 0.80, 0.83]), np.array([0.76, 0.79, 0.80, 0.74, 0.85])
    out = bootstrap_paired(a, b, seed=7)
    # The same resamples by hand: rows of seed indices drawn with replacement, the percentiles at the
    # expanded level (0.095% and 99.905% on 5 seeds).
    rows = np.random.default_rng(7).integers(0, 5, (RESAMPLES, 5))
    d = a - b
    assert out["ci95_diff"] == pytest.approx(np.percentile(d[rows].mean(axis=1), _tails(5)), abs=1e-12)
    score = np.where(d == 0, 0.5, (d > 0).astype(float))
    assert out["p_improvement"] == pytest.approx(3.5 / 5)  # 3 wins, 1 tie, 1 loss
    assert out["ci95_improvement"] == pytest.approx(np.percentile(score[rows].mean(axis=1), _tails(5)), abs=1e-12)
    assert bootstrap_paired(a, b, seed=7) == out  # reproducible from the seed
    lower = bootstrap_paired(a, b, higher=False, seed=7)
    assert lower["p_improvement"] == pytest.approx(1.5 / 5)
    assert bootstrap_paired([0.5], [0.4])["ci95_diff"] == [None, None]


def _seeds(rng: np.random.Generator, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Paired seeds: a seed effect shared by both arms (sd 0.03) and noise of their own (sd 0.01)."""
    shared = rng.normal(0.8, 0.03, n)
    return shared + delta + rng.normal(0, 0.01, n), shared + rng.normal(0, 0.01, n)


def test_a_and_a_are_called_different_at_the_nominal_rate() -> None:
    # 400 A/A studies of 10 seeds: the paired t-test is exact for normal differences, so its false
    # positives are Binomial(400, 0.05): 20 ± 4.4. Four standard errors either side keep a correct
    # test in the band; a one-sided p (twice the rate) or a test that ignores the pairing (it takes
    # the shared seed effect for noise and almost never rejects) falls out of it.
    rng, trials = np.random.default_rng(24), 400
    hits = sum(paired(*_seeds(rng, 10, 0.0))["p_ttest"] < ALPHA for _ in range(trials))  # type: ignore[operator]
    tolerance = 4 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    assert ALPHA - tolerance <= hits / trials <= ALPHA + tolerance


def test_bootstrap_interval_of_the_difference_covers_it_at_its_level() -> None:
    # 400 paired problems of 10 seeds with true difference 0.005. The plain percentile interval covers
    # P(|T₉| ≤ z·√(9/10)) ≈ 0.904 here; the expanded one is about the t-interval, mean ± t·s/√n, and
    # covers 0.95: the margin below nominal is four binomial standard errors of 400 trials (0.011).
    # Its width, relative to the t-interval's, is checked too (about 1; the plain percentile
    # interval's is z·√(9/10)/t₀.₉₇₅,₉ ≈ 0.82), so that an interval too wide to miss cannot pass.
    rng, trials, n, delta = np.random.default_rng(7), 400, 10, 0.005
    hits, ratios = 0, []
    for i in range(trials):
        arm, base = _seeds(rng, n, delta)
        lo, hi = bootstrap_paired(arm, base, seed=i)["ci95_diff"]
        t_lo, t_hi = paired(arm, base)["ci95_diff"]  # type: ignore[misc]
        hits += lo <= delta <= hi  # type: ignore[operator]
        ratios.append((hi - lo) / (t_hi - t_lo))  # type: ignore[operator]
    assert hits / trials >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / trials)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)


def test_interquartile_mean_drops_a_quarter_at_each_end() -> None:
    x = [0.9, 0.1, 0.5, 0.6, 0.4, 0.7, 0.3, 0.55]
    out = iqm(x, seed=3)
    assert out["iqm"] == pytest.approx(np.mean(sorted(x)[2:6]))
    rows = np.random.default_rng(3).integers(0, 8, (RESAMPLES, 8))
    resampled = np.sort(np.asarray(x)[rows], axis=1)[:, 2:6].mean(axis=1)
    assert out["ci95"] == pytest.approx(np.percentile(resampled, _tails(8)), abs=1e-12)
    assert out["method"] == BOOTSTRAP_METHOD
    assert iqm([0.5])["ci95"] == [None, None]


def test_performance_profile_is_the_share_strictly_better_than_each_threshold() -> None:
    x = [0.6, 0.7, 0.7, 0.9]
    assert performance_profile(x, [0.0, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0]) == [1.0, 0.75, 0.75, 0.25, 0.25, 0.0, 0.0]
    assert performance_profile(x, [0.6, 0.7, 0.95], higher=False) == [0.0, 0.25, 1.0]  # a loss: below τ is better
    with pytest.raises(ValueError, match="thresholds must be finite"):
        performance_profile(x, [math.inf])


def test_the_same_setting_as_two_arms_is_not_different_through_the_real_pipeline(tmp_path) -> None:
    # A/A on the real pipeline (benchmarks/stats_selfcheck.py runs it with 200 seeds): the runner pairs
    # seeds, so two arms with the same setting train from the same seeds and the same noise streams; the
    # summary must call them not different, whatever the rounding of the training.
    from noisereg.study import Store, parse_config, run_study, summarize
    from noisereg.study.store import default_url

    noise = {"at": "input", "kind": "gaussian", "std": 0.1}
    raw = {
        "name": "aa",
        "seeds": 6,
        "data": {"source": "moons", "n_samples": 20, "noise": 0.3, "random_state": 0, "test_samples": 200},
        "split": {"kind": "holdout", "n_train": 20},
        "model": {"family": "mlp", "widths": [8]},
        "training": {"epochs": 30, "batch_size": 20, "eval_every": 10},
        "arms": [
            {"name": "no noise"},
            {"name": "A", "noise": noise},
            {"name": "A again", "noise": noise, "versus": "A"},
        ],
    }
    run_study(parse_config(raw), tmp_path, report=False, robustness=False)
    with Store(default_url(tmp_path), "aa") as store:
        summary = summarize(store.attrs(), store.completed())
    arms = {a["name"]: a for a in summary["arms"]}
    versus = arms["A again"]["versus"]
    assert versus["arm"] == "A" and versus["n"] == 6
    assert not versus["better"] and not versus["worse"]
    assert versus["p_holm"] is None or versus["p_holm"] >= ALPHA
    assert arms["A again"]["paired"]["better"] == arms["A"]["paired"]["better"]
