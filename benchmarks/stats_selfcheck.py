"""Self-check of the study statistics on simulated seeds where the truth is known (issue 24).

Two questions, each answered with a 95% Clopper–Pearson interval from the number of simulations:

1. **A/A studies**: the same setting as two arms. How often does the paired t-test of
   :func:`noisereg.study.stats.paired` call them different at α = 0.05 (the false-positive rate;
   nominal 0.05)? The Wilcoxon test's rate is printed beside it. Two kinds of seeds: normal values
   with a seed effect shared by both arms (what pairing cancels), and accuracies on 70 test points
   (binomial counts around a seed-dependent rate, so differences are discrete and often tied).
2. **Coverage**: on paired seeds with a known difference, how often does the interval contain the
   truth? For the bootstrap interval of Δ and of P(better) of
   :func:`~noisereg.study.stats.bootstrap_paired`, the t-interval of Δ of ``paired`` for comparison,
   and the bootstrap interval of the interquartile mean of :func:`~noisereg.study.stats.iqm`, on 5, 10
   and 30 seeds. The bootstrap intervals are expanded percentile intervals (``stats.BOOTSTRAP_METHOD``,
   Hesterberg 2015). Two kinds of seeds: normal (true Δ = δ, P(better) = Φ(δ/σ_d), IQM the population
   mean), and accuracies on 70 test points whose rate is 0.01 higher for the arm (true Δ = 0.01; true
   P(better) and IQM computed exactly from the binomial mixture by Gauss–Hermite quadrature over the
   seed's rate). No interval confined to the data's range covers a symmetric population's centre more
   than 1 − 2^(1−n) of the time (all n values on one side: 0.9375 at n = 5): printed beside n.

3. **A/A on the real pipeline** (``--pipeline-seeds N``, default 200; 0 skips it): a small built-in-style
   study (two moons, 30 training points, 500 test points, MLP 32 ReLU, Adam, 200 epochs) run by
   :func:`noisereg.study.run_study` with the same setting (input noise σ = 0.1) as two arms, ``A`` and
   ``A again`` (``versus = "A"``), on N seeds. The study pairs seeds, so the two arms train from the same
   seeds; its summary must call them not different. Then the A/A question with independent seeds:
   arm A's N per-seed test accuracies, drawn in disjoint halves of n seeds (``--sims`` draws, n = 10
   and 30) and compared by :func:`~noisereg.study.stats.paired` and
   :func:`~noisereg.study.stats.bootstrap_paired`: the rate of p < 0.05 (nominal 0.05) and how often
   the bootstrap interval of the difference covers 0 (nominal 0.95). The draws share seeds (N of
   them), so their Clopper–Pearson intervals are a guide, not exact.

Every simulation uses the library's own functions with their full number of resamples
(``stats.RESAMPLES``) and a generator seeded from ``--seed``, so a rerun prints the same figures.

Run by hand: ``python benchmarks/stats_selfcheck.py [--sims 2000] [--seed 0] [--pipeline-seeds 200]``
(about 8 minutes on two shared cores, and a few more for the pipeline).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as sps

from noisereg.study.stats import ALPHA, BOOTSTRAP_METHOD, RESAMPLES, bootstrap_paired, iqm, paired

#: Seed effect, per-arm noise and true difference of the simulated normal seeds (accuracy-like units).
SEED_SD, NOISE_SD, DELTA = 0.03, 0.01, 0.005
TEST_POINTS = 70
#: How much higher the arm's accuracy rate is than the baseline's in the accuracy coverage simulation.
ACCURACY_DELTA = 0.01


def clopper_pearson(hits: int, trials: int) -> tuple[float, float]:
    ci = sps.binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def rate(hits: int, trials: int) -> str:
    lo, hi = clopper_pearson(hits, trials)
    return f"{hits / trials:.4f} [{lo:.4f}, {hi:.4f}]"


def normal_pair(rng: np.random.Generator, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
    seed_effect = rng.normal(0.8, SEED_SD, n)
    return seed_effect + delta + rng.normal(0, NOISE_SD, n), seed_effect + rng.normal(0, NOISE_SD, n)


def accuracy_pair(rng: np.random.Generator, n: int, delta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(rng.normal(0.8, SEED_SD, n), 0.0, 1.0)
    arm = rng.binomial(TEST_POINTS, np.clip(p + delta, 0.0, 1.0)) / TEST_POINTS
    return arm, rng.binomial(TEST_POINTS, p) / TEST_POINTS


def normal_truth() -> dict[str, float]:
    sd_d = NOISE_SD * math.sqrt(2)  # d = δ + e_arm − e_base
    # the IQM of the arm's population: its mean, the population being normal (symmetric)
    return {"diff": DELTA, "improvement": float(sps.norm.cdf(DELTA / sd_d)), "iqm": 0.8 + DELTA}


def accuracy_truth(delta: float = ACCURACY_DELTA, nodes: int = 60) -> dict[str, float]:
    """Δ, P(better) (ties ½) and the arm's IQM of :func:`accuracy_pair`, integrated over the seed's
    rate p ~ N(0.8, SEED_SD) (clipped as drawn) by Gauss–Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    k = np.arange(TEST_POINTS + 1)
    arm_pmf, diff, improvement = np.zeros(k.size), 0.0, 0.0
    for xi, wi in zip(x, w, strict=True):
        p = min(max(0.8 + SEED_SD * xi, 0.0), 1.0)
        q = min(p + delta, 1.0)
        fa, fb = sps.binom.pmf(k, TEST_POINTS, q), sps.binom.pmf(k, TEST_POINTS, p)
        joint = np.outer(fa, fb)  # [arm count, baseline count]
        improvement += wi * (np.tril(joint, -1).sum() + 0.5 * np.trace(joint))
        diff += wi * (q - p)
        arm_pmf += wi * fa
    # the population IQM: twice the integral of the quantile function over (0.25, 0.75)
    upper = np.cumsum(arm_pmf)
    lower = upper - arm_pmf
    share = np.clip(np.minimum(upper, 0.75) - np.maximum(lower, 0.25), 0.0, None)
    return {"diff": float(diff), "improvement": float(improvement), "iqm": float(2 * (share * k / TEST_POINTS).sum())}


def false_positives(
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], n: int, sims: int, seed: int
) -> tuple[int, int]:
    rng = np.random.default_rng([seed, n])
    t_hits = w_hits = 0
    for _ in range(sims):
        p = paired(*draw(rng, n))
        t_hits += p["p_ttest"] is not None and p["p_ttest"] < ALPHA
        w_hits += p["p_wilcoxon"] is not None and p["p_wilcoxon"] < ALPHA
    return t_hits, w_hits


def covers(ci: list[float | None], truth: float) -> bool:
    return ci[0] is not None and ci[1] is not None and ci[0] <= truth <= ci[1]


def coverage(
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
    truth: dict[str, float],
    n: int,
    sims: int,
    seed: int,
    stream: int,
) -> dict[str, int]:
    rng = np.random.default_rng([seed, n, 1, stream])
    hits = {"boot Δ": 0, "t-interval Δ": 0, "boot P(better)": 0, "boot IQM": 0}
    for i in range(sims):
        arm, base = draw(rng, n)
        boot = bootstrap_paired(arm, base, seed=i)
        hits["boot Δ"] += covers(boot["ci95_diff"], truth["diff"])
        hits["boot P(better)"] += covers(boot["ci95_improvement"], truth["improvement"])
        hits["t-interval Δ"] += covers(paired(arm, base)["ci95_diff"], truth["diff"])  # type: ignore[arg-type]
        hits["boot IQM"] += covers(iqm(arm, seed=i)["ci95"], truth["iqm"])
    return hits


def aa_config(seeds: int) -> dict[str, Any]:
    """The A/A study of the module docstring, as a study file's contents."""
    noise = {"at": "input", "kind": "gaussian", "std": 0.1}
    return {
        "name": "aa",
        "seeds": seeds,
        "metric": "accuracy",
        "data": {"source": "moons", "n_samples": 30, "noise": 0.3, "random_state": 0, "test_samples": 500},
        "split": {"kind": "holdout", "n_train": 30},
        "model": {"family": "mlp", "widths": [32]},
        "training": {"epochs": 200, "batch_size": 30, "eval_every": 50},
        "arms": [
            {"name": "no noise"},
            {"name": "A", "noise": noise},
            {"name": "A again", "noise": noise, "versus": "A"},
        ],
    }


def aa_pipeline(seeds: int) -> dict[str, Any]:
    """The A/A study's summary (run in a temporary folder, no report files)."""
    from noisereg.study import Store, parse_config, run_study, summarize
    from noisereg.study.store import default_url

    with tempfile.TemporaryDirectory() as folder:
        run_study(parse_config(aa_config(seeds)), folder, report=False, robustness=False)
        with Store(default_url(folder), "aa") as store:
            return summarize(store.attrs(), store.completed())


def split_seeds(values: np.ndarray, n: int, sims: int, seed: int) -> tuple[int, int]:
    """(p < ALPHA, bootstrap interval covers 0) counts over ``sims`` disjoint halves of n seeds."""
    rng = np.random.default_rng([seed, n, 2])
    rejections = covered = 0
    for i in range(sims):
        pick = rng.permutation(values.size)[: 2 * n]
        a, b = values[pick[:n]], values[pick[n:]]
        p = paired(a, b)["p_ttest"]
        rejections += p is not None and p < ALPHA  # type: ignore[operator]
        covered += covers(bootstrap_paired(a, b, seed=i)["ci95_diff"], 0.0)
    return rejections, covered


def pipeline_check(seeds: int, sims: int, seed: int) -> None:
    t0 = time.perf_counter()
    summary = aa_pipeline(seeds)
    arms = {a["name"]: a for a in summary["arms"]}
    versus = arms["A again"]["versus"]
    differ = versus.get("p_holm") is not None and versus["p_holm"] < ALPHA
    print(
        f"A/A through the pipeline ({seeds} seeds, {time.perf_counter() - t0:.0f} s): 'A again' against 'A': "
        f"mean difference {versus['mean_diff']:+.4g}, paired t-test p = {versus.get('p_ttest')}, "
        f"{versus['ties']} ties of {versus['n']}: {'DIFFERENT (a false alarm)' if differ else 'not different'}"
    )
    values = np.asarray(arms["A"]["per_seed"], dtype=np.float64)
    print(f"A/A with independent seeds: arm A's {values.size} seeds in disjoint halves, {sims} draws per line")
    print(f"{'n':>3}  {'p < 0.05 (nominal 0.05)':<28} bootstrap 95% CI covers 0 (nominal 0.95)")
    for n in (10, 30):
        if 2 * n > values.size:
            continue
        rejections, covered = split_seeds(values, n, sims, seed)
        print(f"{n:>3}  {rate(rejections, sims):<28} {rate(covered, sims)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated studies per line (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline-seeds", type=int, default=200, help="seeds of the pipeline A/A study (0: skip)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(
        f"{args.sims} simulations per line, seed {args.seed}, {RESAMPLES} bootstrap resamples; 95% Clopper–Pearson intervals"
    )
    print()
    print(f"A/A: false-positive rate at alpha = {ALPHA} (nominal {ALPHA})")
    print(f"{'seeds':<20} {'n':>3}  {'paired t-test':<26} Wilcoxon")
    for label, draw in (
        ("normal, seed effect", lambda rng, n: normal_pair(rng, n, 0.0)),
        (f"accuracy, {TEST_POINTS} points", accuracy_pair),
    ):
        for n in (10, 30):
            t_hits, w_hits = false_positives(draw, n, args.sims, args.seed)
            print(f"{label:<20} {n:>3}  {rate(t_hits, args.sims):<26} {rate(w_hits, args.sims)}")
    print()
    cases = (
        ("normal", lambda rng, n: normal_pair(rng, n, DELTA), normal_truth()),
        (f"accuracy, {TEST_POINTS} points", lambda rng, n: accuracy_pair(rng, n, ACCURACY_DELTA), accuracy_truth()),
    )
    print(f"Coverage of 95% intervals; bootstrap: {BOOTSTRAP_METHOD} ({RESAMPLES} resamples)")
    for stream, (label, draw, truth) in enumerate(cases):
        print(f"{label} seeds, truth: " + ", ".join(f"{k} {v:.6g}" for k, v in truth.items()))
        print(f"{'interval':<16} {'n':>3}  {'coverage':<26} range bound 1 − 2^(1−n)")
        for n in (5, 10, 30):
            hits = coverage(draw, truth, n, args.sims, args.seed, stream)
            for name, k in hits.items():
                bound = f"{1 - 2.0 ** (1 - n):.4f}" if name == "boot Δ" else ""
                print(f"{name:<16} {n:>3}  {rate(k, args.sims):<26} {bound}".rstrip())
        print()
    if args.pipeline_seeds:
        pipeline_check(args.pipeline_seeds, args.sims, args.seed)
        print()
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
