"""The report's recommendation: which noise (site and strength) to use, the evidence, and plain
words when the data cannot decide (no torch).

The test set never chooses. Picking the setting with the best test mean among several and then
quoting that mean flatters it (the winner's curse: the choice and the score use the same noise), so
the recommended setting is the one a selection procedure chose on the training part, and the test
set only estimates it.

:func:`recommend` reads the summary's arms (their paired comparisons with the baseline, Holm-corrected)
and selection, and returns ``{"status", "cell", "noise", "chosen_by", "estimate", "beat_no_noise",
"optimistic", "text", "evidence", "caveats"}``:

- With a selection (``[selection]`` in the study file: a grid chosen by cross-validation on the
  training part), ``cell`` is the value it chose and ``chosen_by`` is ``"cross-validation"``;
  ``estimate`` is that cell's test result (``mean``, ``ci95``, ``mean_diff`` and ``ci95_diff``
  against no noise, ``p_ttest``, ``p_holm``, ``n``, ``anytime``: a sequential study's interval). Its paired t-test is the one comparison fixed
  before the test set was looked at, so it is judged uncorrected at ``alpha`` (the Holm p over every
  cell is shown beside it). ``status`` is ``"use"`` when it beats no noise, ``"no_noise"`` when it
  is significantly worse or the chosen value is 0, ``"undecided"`` otherwise (keep no noise unless
  more seeds or test points settle it); ``cell`` is None for ``"no_noise"``.
  With the gain check (``[selection] guard``, :func:`noisereg.study.selection.gain_check`), a value
  the criterion chose is kept only where the CV gain over no noise lies above zero; where it does not,
  the choice is no noise and the text says why (the gain and its interval over the folds); where it
  does, that is evidence.
- Without a selection, ``cell`` is None: ``status`` is ``"unselected"`` when settings beat no noise
  (Holm p < alpha; named in ``beat_no_noise`` and the text, none crowned, and the text says to add a
  ``[selection]`` section to get a choice), ``"no_noise"`` when none does and the best mean is no
  noise, ``"undecided"`` when none does but a noisy setting has the best mean.
- ``optimistic``: the cell with the best test mean, where it is a noisy setting other than ``cell``
  (``cell``, ``mean``, ``mean_diff``, ``p_holm``, ``text``): chosen on the same data it is scored on,
  so its figures are optimistic; a caveat says so, and whether the test set can tell it from the
  recommended cell (paired t-test on their common seeds).

Caveats, each a plain sentence: a chosen strength at the edge of its grid (the best may lie beyond
it); too few points (fewer than ``FEW_TRAIN`` training samples, fewer than ``FEW_TEST`` test samples
— one test point is then worth more than 1/FEW_TEST of accuracy — or fewer than ``FEW_SEEDS``
seeds); the optimistic best test cell; settings outside the selection that beat no noise.

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

from noisereg.study.report.sequential import difference_interval
from noisereg.study.selection import gain_words, procedure_name
from noisereg.study.stats import paired

__all__ = ["recommend", "FEW_TRAIN", "FEW_TEST", "FEW_SEEDS"]

FEW_TRAIN = 50
FEW_TEST = 100
FEW_SEEDS = 10


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _effect(arm: Mapping[str, Any], metric: str) -> str:
    p = arm["paired"]
    text = (
        f"{arm['name']}: test {metric} {arm['mean']:.4f} ± {_fmt(arm['std'])} (sd over {arm['n']} seeds); "
        f"{p['mean_diff']:+.4f} vs no noise, {difference_interval(p)}, paired t-test p = {_fmt(p.get('p_ttest'))}, "
        f"Holm p = {_fmt(p.get('p_holm'))}"
    )
    boot, pw = p.get("bootstrap") or {}, p.get("power") or {}
    if boot.get("ci95_diff") and boot["ci95_diff"][0] is not None:
        blo, bhi = boot["ci95_diff"]
        ilo, ihi = boot["ci95_improvement"]
        text += (
            f"; bootstrap 95% CI [{_fmt(blo)}, {_fmt(bhi)}]; better than no noise on {_fmt(boot['p_improvement'])} of "
            f"seeds, 95% CI [{_fmt(ilo)}, {_fmt(ihi)}]"
        )
    if pw.get("mde") is not None:
        needed = pw.get("seeds_needed")
        text += (
            f"; on {arm['n']} seeds the paired t-test (alpha {_fmt(pw['alpha'])}, uncorrected) detects a difference of "
            f"{_fmt(pw['mde'])} with 80% power"
            + (f", and about {needed} seeds would detect this one" if needed is not None else "")
        )
        strict = pw.get("holm") or {}
        if strict.get("mde") is not None:
            text += (
                f"; after Holm's correction (its strictest level, alpha {_fmt(strict['alpha'])}) a difference of "
                f"{_fmt(strict['mde'])}"
            )
    return text


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


def _estimate(cell: Mapping[str, Any]) -> dict[str, Any]:
    p = cell.get("paired") or {}
    keys = ("mean_diff", "ci95_diff", "p_ttest", "p_holm", "anytime")
    return {"mean": cell["mean"], "ci95": cell["ci95"], "n": cell["n"], **{k: p.get(k) for k in keys}}


def _choose(
    summary: Mapping[str, Any], chosen: Mapping[str, Any] | None, better: list[Mapping[str, Any]], alpha: float
) -> tuple[str, str, Mapping[str, Any] | None]:
    """(status, text, recommended cell) of the module docstring."""
    metric, base, higher = summary["metric"], summary["baseline"], summary["higher_is_better"]
    arms = summary["arms"]
    compared = [a for a in arms if a.get("paired") and a["paired"].get("n")]
    sel = summary.get("selection") or {}
    if chosen is not None:
        p = chosen.get("paired") or {}
        criterion = procedure_name(
            sel.get("criterion", "likelihood"), sel.get("rule", "best"), screen=sel.get("screen", True)
        )
        procedure = criterion + (", gain check" if sel.get("guard") else "")
        how = f"chosen by cross-validation on the training part ({procedure})"
        if chosen["name"] == base or chosen.get("grid_value") == 0:
            check = sel.get("gain_check")
            if check and not check.get("passed"):
                return (
                    "no_noise",
                    f"Use no noise ({base}): cross-validation on the training part cannot tell that any noise helps. "
                    f"{gain_words(check, sel.get('param'), criterion)}, which does not lie above zero, so the choice is no noise "
                    f"({chosen['name']}).",
                    None,
                )
            return (
                "no_noise",
                f"Use no noise ({base}): cross-validation on the training part chose no noise ({chosen['name']}).",
                None,
            )
        pt, diff = p.get("p_ttest"), (p.get("mean_diff") or 0.0) * (1 if higher else -1)
        # one comparison, fixed by the training part before the test set was looked at: no correction
        said = (
            f"{p['mean_diff']:+.4f} vs no noise, paired t-test p = {_fmt(pt)}, one comparison fixed in advance, uncorrected"
            if p.get("n")
            else "no paired result"
        )
        if pt is not None and pt < alpha and diff > 0:
            return "use", f"Use {chosen['name']}, {how}: on the test set it beats no noise ({said}).", chosen
        if pt is not None and pt < alpha and diff < 0:
            return (
                "no_noise",
                f"Use no noise ({base}): the value {how}, {chosen['name']}, does significantly worse than no noise on "
                f"the test set ({said}); do not follow it.",
                None,
            )
        return (
            "undecided",
            f"The data cannot decide: {chosen['name']}, {how}, does not differ significantly from no noise on the "
            f"test set ({said}). Keep no noise ({base}) unless more seeds or test points settle it.",
            chosen,
        )
    if better:
        names = ", ".join(a["name"] for a in better)
        return (
            "unselected",
            f"{len(better)} setting(s) beat no noise on test {metric} (Holm-corrected paired t-tests over {len(compared)} "
            f"comparisons): {names}. None is crowned: the best of them on the test set would be chosen on the data it is "
            "scored on. To get a choice, add a [selection] section to the study file (an arm with a grid of values, "
            "chosen by cross-validation on the training part).",
            None,
        )
    if not compared:
        return "undecided", "Only the baseline has results: nothing to recommend yet.", None
    sign = 1.0 if higher else -1.0
    if max(arms, key=lambda a: sign * a["mean"])["name"] == base:
        return (
            "no_noise",
            f"Use no noise ({base}): no setting beats it on test {metric} (Holm-corrected paired t-tests, alpha = {alpha}).",
            None,
        )
    return (
        "undecided",
        f"The data cannot decide: no setting beats no noise ({base}) on test {metric} after Holm's correction. Keep no "
        "noise unless more seeds or test points settle it.",
        None,
    )


def _optimistic(
    summary: Mapping[str, Any],
    cell: Mapping[str, Any] | None,
    per_seed: Mapping[str, Mapping[int, float]],
    alpha: float,
) -> dict[str, Any] | None:
    """The best test cell where it is a noisy setting other than ``cell`` (module docstring)."""
    arms, base = summary["arms"], summary["baseline"]
    sign = 1.0 if summary["higher_is_better"] else -1.0
    noisy = [a for a in arms if a["name"] != base and a.get("paired") and a["paired"].get("n")]
    if not noisy:
        return None
    best = max(noisy, key=lambda a: sign * a["mean"])
    if (cell is not None and best["name"] == cell["name"]) or sign * best["mean"] <= sign * next(
        (a["mean"] for a in arms if a["name"] == base), -sign * float("inf")
    ):
        return None
    p = best["paired"]
    text = (
        f"The best test mean, {best['name']} ({best['mean']:.4f}, {p['mean_diff']:+.4f} vs no noise, Holm p = "
        f"{_fmt(p.get('p_holm'))}), is picked on the same test data it is scored on: optimistic, and not the recommendation."
    )
    if cell is not None:
        a, b = per_seed.get(best["name"], {}), per_seed.get(cell["name"], {})
        common = [s for s in a if s in b]
        tie = paired([a[s] for s in common], [b[s] for s in common]) if len(common) > 1 else {}
        # paired() gives p_ttest as a float, or None where the t-test is undefined
        pt = cast(float | None, tie.get("p_ttest"))
        if pt is None or pt >= alpha:
            text += (
                f" The test set cannot tell it from {cell['name']} (paired t-test p = {_fmt(pt)} on {len(common)} common "
                "seeds)."
            )
        else:
            text += f" On the test set it differs from {cell['name']} (paired t-test p = {_fmt(pt)}, uncorrected)."
    return {
        "cell": best["name"],
        "mean": best["mean"],
        "mean_diff": p["mean_diff"],
        "p_holm": p.get("p_holm"),
        "text": text,
    }


def recommend(
    summary: Mapping[str, Any], per_seed: Mapping[str, Mapping[int, float]], alpha: float = 0.05
) -> dict[str, Any]:
    """The recommendation of ``summary`` (module docstring). ``per_seed`` maps each cell name to
    its {seed: test metric}, to compare the recommended cell with the best test cell on their common
    seeds."""
    arms = summary["arms"]
    metric, higher = summary["metric"], summary["higher_is_better"]
    sign = 1.0 if higher else -1.0
    compared = [a for a in arms if a.get("paired") and a["paired"].get("n")]
    better = sorted((a for a in compared if a["paired"].get("better")), key=lambda a: -sign * a["mean"])
    sel = summary.get("selection") or {}
    chosen = sel.get("test")
    status, text, cell = _choose(summary, chosen, better, alpha)
    caveats: list[str] = []
    shown = (
        cell if cell is not None else chosen if chosen is not None and chosen["name"] != summary["baseline"] else None
    )
    evidence = [_effect(shown, metric)] if shown is not None and shown.get("paired") else []
    if cell is not None:
        edge = _edge(cell, arms)
        if edge:
            caveats.append(
                f"{cell['name']} is the {edge} value of its grid: the best may lie beyond it; extend the grid."
            )
    check = sel.get("gain_check")
    if check and check.get("passed") and cell is not None:
        procedure = procedure_name(
            sel.get("criterion", "likelihood"), sel.get("rule", "best"), screen=sel.get("screen", True)
        )
        evidence.append(f"{gain_words(check, sel.get('param'), procedure)}: above zero, so the choice stands")
    if chosen is None:
        evidence += [_effect(a, metric) for a in better]
    else:
        outside = [a["name"] for a in better if a["arm"] != sel.get("arm")]
        if outside:
            caveats.append(
                f"Outside the selection, {', '.join(outside)} also beat no noise on the test set (Holm-corrected); the "
                "selection did not compare them."
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
    _weigh_other_measurements(summary, cell, status, alpha, evidence, caveats)
    optimistic = _optimistic(summary, cell, per_seed, alpha)
    if optimistic:
        caveats.append(optimistic["text"])
        if status != "unselected":  # there the text already says why the best test mean is not crowned
            text += f" The best test mean, {optimistic['cell']}, is optimistic: chosen on the data it is scored on."
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
        "chosen_by": "cross-validation" if chosen is not None else None,
        "estimate": _estimate(cell) if cell is not None else None,
        "beat_no_noise": [a["name"] for a in better],
        "optimistic": optimistic,
        "text": text,
        "evidence": evidence,
        "caveats": caveats,
    }
