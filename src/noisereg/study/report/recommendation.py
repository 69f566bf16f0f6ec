"""The report's recommendation: which noise (site and strength) to use, the evidence, and plain
words when the data cannot decide (no torch).

:func:`recommend` reads the summary's arms (their paired comparisons with the baseline, Holm-corrected)
and selection, and returns ``{"status", "cell", "noise", "text", "evidence", "caveats"}``:

- ``status = "use"``: at least one setting beats no noise (Holm p < alpha); ``cell`` is the one with
  the best mean among them. If the runner-up among those is not significantly different from it
  (paired t-test on the same seeds, p >= alpha), a caveat says the two are tied within noise.
- ``status = "no_noise"``: no setting beats no noise and the best mean is no noise.
- ``status = "undecided"``: no setting beats no noise, but the best mean is a noisy setting: the
  data cannot decide; ``cell`` is that setting, and the text says to keep no noise unless more data
  (seeds, test points) settle it.

Caveats, each a plain sentence: a chosen strength at the edge of its grid (the best may lie beyond
it); too few points (fewer than ``FEW_TRAIN`` training samples, fewer than ``FEW_TEST`` test samples
— one test point is then worth more than 1/FEW_TEST of accuracy — or fewer than ``FEW_SEEDS``
seeds); a cross-validation choice that does worse than no noise on the test set; and always that
picking the best of several settings on the test set flatters it (the nested cross-validation
estimate, where present, does not).

Other measurements, where the study made them, are weighed against the choice on the main metric
(each a paired t-test against no noise on the same seeds, uncorrected, at ``alpha``): the calibration
error (``calibration.ece_paired``, lower is better) and the metric on noisy test inputs
(``noisy.paired``, the training monitor's). A measurement that contradicts the choice is a caveat
said plainly ("Calibration contradicts this choice: ..."), one that supports it is evidence; with no
noise recommended, a setting that is significantly better on such a measurement is named as the
choice for users who need that property. The nested cross-validation estimate of the selection, when
present, is evidence, and a caveat when its interval lies below zero. A measurement marked
``like_for_like: false`` (inputs scaled otherwise than the baseline's, so a test-noise σ means another
amount of noise) is not weighed, and a caveat says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from noisereg.study.stats import paired

__all__ = ["recommend", "FEW_TRAIN", "FEW_TEST", "FEW_SEEDS"]

FEW_TRAIN = 50
FEW_TEST = 100
FEW_SEEDS = 10


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _effect(arm: Mapping[str, Any], metric: str) -> str:
    p = arm["paired"]
    lo, hi = p["ci95_diff"]
    return (
        f"{arm['name']}: test {metric} {arm['mean']:.4f} ± {_fmt(arm['std'])} (sd over {arm['n']} seeds); "
        f"{p['mean_diff']:+.4f} vs no noise, 95% CI [{_fmt(lo)}, {_fmt(hi)}], paired t-test p = {_fmt(p.get('p_ttest'))}, "
        f"Holm p = {_fmt(p.get('p_holm'))}"
    )


def _edge(arm: Mapping[str, Any], arms: Sequence[Mapping[str, Any]]) -> str | None:
    if arm.get("grid_value") is None or arm.get("search"):
        return None
    grid = sorted(a["grid_value"] for a in arms if a["arm"] == arm["arm"] and a.get("grid_value") is not None)
    if len(grid) < 2:
        return None
    if arm["grid_value"] == grid[-1]:
        return "largest"
    if arm["grid_value"] == grid[0] and grid[0] > 0:
        return "smallest"
    return None


_OTHER = (
    ("calibration", "ece_paired", "Calibration", "expected calibration error (ECE)", False),
    ("noisy", "paired", "Robustness", "test {metric} on noisy inputs", True),
)
"""(arm key, paired key, what it is, the measured quantity, higher is better) of the measurements
weighed beside the main metric."""


def _weigh_other_measurements(
    summary: Mapping[str, Any],
    cell: Mapping[str, Any] | None,
    status: str,
    alpha: float,
    evidence: list[str],
    caveats: list[str],
) -> None:
    """Evidence and caveats from the measurements of :data:`_OTHER` (see the module docstring)."""
    metric, base = summary["metric"], summary["baseline"]
    for measurement in _OTHER:
        label = measurement[2]
        unlike = [a for a in summary["arms"] if _unlike(a, measurement)]
        if cell is not None and status == "use" and _unlike(cell, measurement):
            caveats.append(
                f"{label} is not weighed for {cell['name']}: {_unlike(cell, measurement)} (not like for like)."
            )
        elif status in ("no_noise", "undecided") and unlike:
            names = ", ".join(a["name"] for a in unlike)
            caveats.append(
                f"{label} is not weighed for {names}: {_unlike(unlike[0], measurement)} (not like for like)."
            )
        if cell is not None and cell["name"] != base and status == "use":
            sign, said = _other_verdict(cell, measurement, metric, alpha)
            if sign < 0:
                caveats.append(f"{label} contradicts this choice: {cell['name']} is significantly worse on {said}.")
            elif sign > 0:
                evidence.append(f"{cell['name']} is also better on {said}")
        elif status in ("no_noise", "undecided"):
            better = [
                a for a in summary["arms"] if a["name"] != base and _other_verdict(a, measurement, metric, alpha)[0] > 0
            ]
            if better:
                said = _other_verdict(better[0], measurement, metric, alpha)[1]
                caveats.append(
                    f"{label} says otherwise: {better[0]['name']} does not beat no noise on test {metric}, but is significantly "
                    f"better on {said}; choose it if that matters more."
                )


def _unlike(arm: Mapping[str, Any], measurement: tuple[str, str, str, str, bool]) -> str:
    """Why ``arm``'s comparison on ``measurement`` is not like for like with the baseline's ("" when it is)."""
    p = (arm.get(measurement[0]) or {}).get(measurement[1]) or {}
    return "" if p.get("like_for_like", True) else p.get("scale", "not like for like")


def _other_verdict(
    arm: Mapping[str, Any], measurement: tuple[str, str, str, str, bool], metric: str, alpha: float
) -> tuple[int, str]:
    """(+1 better, −1 worse, 0 no significant difference from no noise, and the words) of ``arm`` on
    one measurement of :data:`_OTHER`."""
    key, pkey, _, quantity, higher = measurement
    p = (arm.get(key) or {}).get(pkey) or {}
    if _unlike(arm, measurement) or not p.get("n") or p.get("p_ttest") is None or p["p_ttest"] >= alpha:
        return 0, ""
    sign = 1 if (p["mean_diff"] > 0) == higher else -1
    quantity = quantity.format(metric="accuracy" if metric == "loss" else metric)
    return (
        sign,
        f"{quantity} {p['mean_diff']:+.4f} against no noise (paired t-test p = {_fmt(p['p_ttest'])}, {p['n']} seeds)",
    )


def recommend(
    summary: Mapping[str, Any], per_seed: Mapping[str, Mapping[int, float]], alpha: float = 0.05
) -> dict[str, Any]:
    """The recommendation of ``summary`` (module docstring). ``per_seed`` maps each cell name to
    its {seed: test metric}, to compare the two best settings on their common seeds."""
    arms = summary["arms"]
    metric, higher, base = summary["metric"], summary["higher_is_better"], summary["baseline"]
    sign = 1.0 if higher else -1.0
    compared = [a for a in arms if a.get("paired") and a["paired"].get("n")]
    better = sorted((a for a in compared if a["paired"].get("better")), key=lambda a: -sign * a["mean"])
    caveats: list[str] = []
    cell: Mapping[str, Any] | None = None
    if better:
        cell = better[0]
        status = "use"
        text = f"Use {cell['name']}: it beats no noise on test {metric} after Holm's correction over {len(compared)} comparisons."
        if len(better) > 1:
            second = better[1]
            a, b = per_seed.get(cell["name"], {}), per_seed.get(second["name"], {})
            common = [s for s in a if s in b]
            tie = paired([a[s] for s in common], [b[s] for s in common]) if len(common) > 1 else {}
            # paired() gives p_ttest as a float, or None where the t-test is undefined
            p = cast(float | None, tie.get("p_ttest"))
            if p is None or p >= alpha:
                caveats.append(
                    f"Tie within noise: {cell['name']} and {second['name']} both beat no noise, and the data cannot tell them "
                    f"apart (paired t-test p = {_fmt(p)} on {len(common)} common seeds); either will do."
                )
    elif compared:
        best = max(arms, key=lambda a: sign * a["mean"])
        if best["name"] == base:
            status = "no_noise"
            text = f"Use no noise ({base}): no setting beats it on test {metric} (Holm-corrected paired t-tests, alpha = {alpha})."
        else:
            cell, status = best, "undecided"
            text = (
                f"The data cannot decide: the best mean is {best['name']}, but it does not beat no noise after Holm's correction. "
                f"Keep no noise ({base}) unless more seeds or test points settle it."
            )
    else:
        status, text = "undecided", "Only the baseline has results: nothing to recommend yet."
    evidence = [_effect(cell, metric)] if cell is not None and cell.get("paired") else []
    if cell is not None:
        edge = _edge(cell, arms)
        if edge:
            caveats.append(
                f"{cell['name']} is the {edge} value of its grid: the best may lie beyond it; extend the grid."
            )
    data = summary.get("data") or {}
    n_train, n_test = sum(data.get("n_train") or [0]), sum(data.get("n_test") or [0])
    if n_train and n_train < FEW_TRAIN:
        caveats.append(
            f"Too few points to be sure: {n_train} training samples; a result this small may not carry over to more data."
        )
    if n_test and n_test < FEW_TEST:
        caveats.append(
            f"{n_test} test samples: one test point is {1 / n_test:.3f} of accuracy, so small differences are coarse."
        )
    if summary.get("seeds") and summary["seeds"] < FEW_SEEDS:
        caveats.append(f"Only {summary['seeds']} seeds per arm: the paired tests have little power.")
    sel = summary.get("selection") or {}
    test = sel.get("test") or {}
    if test.get("paired") and test["paired"].get("worse"):
        caveats.append(
            f"The value chosen by cross-validation ({test['name']}) does significantly worse than no noise on the test set: "
            "do not follow it."
        )
    _weigh_other_measurements(
        summary, cell, status, alpha, evidence, caveats
    )  # before the general caveat: it is specific
    if cell is not None and cell["name"] != base:
        caveats.append(
            "The best of several settings, picked on the test set, looks better there than it will on new data"
            + ("; the nested cross-validation estimate does not have that bias." if sel.get("nested") else ".")
        )
    nested = sel.get("nested")
    if nested:
        gain = nested["gain"]
        lo, hi = gain["ci95"]
        evidence.append(
            f"nested cross-validation of choosing {sel.get('param') or 'the value'} by CV, then training: {gain['mean']:+.4f} held-out "
            f"{metric} against no noise (positive is better), 95% CI [{_fmt(lo)}, {_fmt(hi)}] over {nested['folds']} outer folds"
        )
        if hi is not None and hi < 0:
            caveats.append(
                "Nested cross-validation says choosing the value by cross-validation, then training, does worse than no noise."
            )
    noise = None
    if cell is not None:
        noise = {"arm": cell["arm"], "param": cell.get("param"), "value": cell.get("grid_value")}
    return {
        "status": status,
        "cell": None if cell is None else cell["name"],
        "noise": noise,
        "text": text,
        "evidence": evidence,
        "caveats": caveats,
    }
