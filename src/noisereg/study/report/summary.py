"""The study summary: statistics over seeds per cell, paired comparisons, the CV selection, a verdict.

Built from the store's plain data alone (no torch). The schema of ``summary.json``
(``"schema": "noisereg.summary/3"``; 2 since the recommendation stopped choosing by the test set, 3
since the bootstrap intervals are expanded percentile intervals, a sequential study's comparisons
stopped early give the confidence sequence's interval instead of fixed-n ones, and a sequential
cell's ``status`` always describes its comparison, racing being ``raced_at``/``raced_by``):

- ``study``, ``description``, ``claim`` (the published claim the study tests, or ""), ``task``, ``data`` (data name, sizes, classes, loss);
- ``metric`` (``accuracy`` | ``loss`` | ``r2``), ``metric_key`` (the stored final metric, e.g.
  ``test_acc``), ``higher_is_better``;
- ``baseline``: the no-noise arm's name; ``seeds``; ``cells_total``, ``cells_complete``, ``missing``
  (cell keys without a COMPLETE trial);
- ``arms``: one object per completed cell, in file order: ``name`` (the cell key: the arm's name, or
  ``arm[param=value]`` for a grid cell), ``arm``, ``grid_value``, ``param``, ``n`` (seeds), ``mean``,
  ``std``, ``ci95`` [low, high] (95% t-interval over seeds), ``median``, ``min``, ``max``, ``iqm``
  (``iqm``, the interquartile mean over seeds, its bootstrap ``ci95`` and ``method``),
  ``per_seed`` (the values; a seed whose value is not finite is left out of everything), ``train`` (same statistics of the training metric), ``loss`` (of the test
  loss), and, except for the baseline, ``paired``: ``n``, ``mean_diff`` (cell − baseline),
  ``std_diff``, ``ci95_diff``, ``p_ttest``, ``p_wilcoxon``, ``p_holm`` (paired t-test p adjusted by
  Holm over all cells), ``cohen_dz``, ``rank_biserial``, ``wins``/``ties``/``losses``, ``better`` and
  ``worse`` (Holm p < 0.05 in that direction), ``bootstrap`` (bootstrap over seeds, pairs
  resampled together, seeded by the study seed: ``ci95_diff``, ``p_improvement`` — the share of
  seeds on which the cell is better, ties ½, an estimate of P(cell better than no noise on a new
  seed) — ``ci95_improvement``, ``method`` ("expanded percentile": the percentile interval at the
  level that gives a mean the t-interval's coverage, see :mod:`noisereg.study.stats`), ``resamples``,
  ``seed``, ``over``: "seeds"; a stored seed's value is already its mean over outer folds where the
  split has them, so seeds are what is resampled), in a sequential study ``anytime`` and
  ``stopped_early`` (where it stopped early, ``ci95_diff`` and the bootstrap intervals are null: see
  :func:`noisereg.study.report.sequential.anytime_intervals`) and
  ``power`` (null where the comparison is significant; else what the paired t-test at the nominal
  alpha 0.05, uncorrected, can detect on these seeds: ``alpha``, ``power`` 0.8, ``mde`` and
  ``mde_dz``, the minimum detectable effect in metric and d_z units, ``seeds_needed`` to detect the
  observed mean difference: see :func:`noisereg.study.stats.power`; with more than one comparison also
  ``holm``: ``alpha`` = 0.05/m, ``mde``, ``mde_dz``, ``seeds_needed`` at the level of the first step of
  Holm's correction over the m comparisons, what a difference needs to be called significant after the
  correction whatever the other p-values); a cell of a ``search`` also has ``search: true`` and
  ``site`` (the proposed site, or null), and its ``grid_value`` is the proposed value; an arm with
  ``versus`` in its config also has ``versus``: ``arm`` (the other arm) and the same paired fields
  against it (this − other), Holm-corrected over the ``versus`` comparisons;
- per arm of a one-output linear model also ``coef``: ``names`` (features), ``mean`` and ``std``
  (over seeds) of each fitted weight, ``norm`` (‖mean‖₂); and its ``versus`` then has ``distance``:
  ``means`` ‖w̄_arm − w̄_other‖₂, ``relative`` (that over ‖w̄_other‖₂), ``per_seed`` (statistics of
  ‖w_arm − w_other‖₂ seed by seed), ``other_from_baseline`` ‖w̄_other − w̄_baseline‖₂ (the scale
  to judge the distance by);
- ``recommendation``: ``status`` (use | no_noise | undecided | unselected), ``cell`` (the value the
  selection chose on the training part, or null: the test set never chooses), ``noise`` (arm,
  param, value), ``chosen_by`` ("cross-validation" or null), ``estimate`` (the cell's test result:
  mean, ci95, n, mean_diff, ci95_diff, p_ttest, p_holm), ``beat_no_noise`` (cell names),
  ``optimistic`` (the best test cell where it is another noisy one: cell, mean, mean_diff, p_holm,
  text), ``text``, ``evidence`` and ``caveats`` (sentences): see
  :mod:`noisereg.study.report.recommendation`;
- ``verdict``: ``any_better``, ``better`` (cell names), ``best_mean`` (cell with the best mean),
  ``text`` (one plain sentence);
- ``selection``: null, or ``arm``, ``param``, ``criterion`` (a score of
  :mod:`noisereg.study.selection`), ``rule`` (best | one_se), ``screen`` (the accuracy screen;
  false for runs stored before it existed), ``screened_out`` (the values it excluded), ``guard`` (the
  gain check; false for runs stored before it existed) and ``gain_check`` (null, or the check of the
  value the criterion chose: ``value``, ``metric``, ``gain``, ``ci``, ``folds``, ``confidence``,
  ``passed``; where not passed, ``chosen`` is no noise: :func:`noisereg.study.selection.gain_check`),
  ``chosen_by`` (procedure name -> the value it chooses, for every score, rule and screen the stored
  results allow), ``folds``,
  ``values``, ``cv_loss`` / ``cv_loss_se`` / ``cv_acc`` (mean over seeds × folds and its standard
  error, per value; None for missing cells), ``chosen`` (by the criterion), ``at_edge`` (None, or
  ``"largest"`` / ``"smallest"`` when the chosen value is at that end of the grid, so that the best
  may lie beyond it; 0 as the smallest is not an edge; never for a search), ``chosen_by_likelihood``
  (unscreened), ``chosen_by_accuracy``, ``cell`` (the chosen cell's name) and ``test`` (that cell's entry from
  ``arms``: its test result on the whole training part); for a search arm, ``values`` are the
  proposed values in the order proposed (null for a cell not finished), ``sites`` the proposed sites
  (or null), and ``search`` the arm's search table (sampler, trials, low, high, log, ...); with
  ``selection.nested``, ``nested``: ``folds`` (outer folds), ``chosen`` (the value chosen in each),
  ``chosen_metric`` and ``baseline_metric`` (per outer fold, mean over seeds), ``gain`` (statistics
  over the outer folds of chosen − baseline, oriented so that positive is better: ``mean``, ``std``,
  ``ci95``, ...) and ``seeds``;
- per arm of a study with ``[training] hessian_trace``, ``hessian_trace``: statistics of the Hessian
  trace over seeds and ``paired`` against the baseline (``flatter``, ``sharper``): see
  :mod:`noisereg.study.report.curvature`;
- per arm also ``noisy``, ``calibration``, ``corruption``, ``certified``, and at the top
  ``robustness``: see :mod:`noisereg.study.report.robustness`; ``noisy`` also has ``paired``, the
  noisy test metric against the baseline's on the same seeds (as ``paired``; no correction), with
  ``like_for_like: false`` and ``scale`` (why) where the arm's inputs are scaled otherwise than the
  baseline's (``arms[].standardize``): the test noise is drawn in each arm's own input units;
- ``sequential``: null for a fixed study; for ``seeds = { max, step }``, what its rounds did (see
  :mod:`noisereg.study.report.sequential`); ``seeds`` is then the largest number of seeds.

Numbers that are undefined (a standard deviation of one seed) are null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from noisereg.engine.vocabulary import current_site
from noisereg.study.config.sequential import max_seeds
from noisereg.study.report.curvature import annotate_curvature
from noisereg.study.report.recommendation import recommend
from noisereg.study.report.robustness import annotate_robustness
from noisereg.study.report.selection_summary import selection_summary
from noisereg.study.report.sequential import anytime_intervals, sequential_section
from noisereg.study.rounds import EARLIER_MAX
from noisereg.study.stats import ALPHA, bootstrap_paired, holm, iqm, paired, power, summary_statistics

__all__ = ["summarize", "metric_of", "SCHEMA", "ALPHA"]

SCHEMA = "noisereg.summary/3"
_METRIC_KEY = {
    "accuracy": ("test_acc", "train_acc", True),
    "loss": ("test_loss", "train_loss", False),
    "r2": ("test_r2", "train_r2", True),
}


def _metric(config: Mapping[str, Any], task: str) -> str:
    return config.get("metric") or ("r2" if task == "regression" else "accuracy")


def metric_of(metric: str | None, task: str) -> tuple[str, bool]:
    """(the stored final metric key, whether higher is better) of a study's ``metric`` (None: by task)."""
    key, _, higher = _METRIC_KEY[_metric({"metric": metric}, task)]
    return key, higher


def _stats(res: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    values = list(_by_seed(res, key).values())
    return summary_statistics(values) if values else None


def _by_seed(res: Mapping[str, Any], key: str) -> dict[int, float]:
    """{seed: value} of a stored final metric, leaving out seeds whose value is not finite."""
    values = res["final"].get(key) or []
    return {s: float(v) for s, v in zip(res["seeds"], values, strict=False) if v is not None and math.isfinite(v)}


def _paired(cell: Mapping[str, Any], base: Mapping[str, Any], key: str) -> dict[str, Any]:
    a, b = _by_seed(cell, key), _by_seed(base, key)
    common = [s for s in a if s in b]
    return paired([a[s] for s in common], [b[s] for s in common]) if common else {"n": 0}


def _interval_estimates(
    arms: list[dict[str, Any]], done: Mapping[str, Any], baseline: str, key: str, higher: bool, seed: int
) -> None:
    """Each arm's ``iqm``; each comparison with the baseline's ``bootstrap`` and, where it is not
    significant, ``power`` (see the module docstring). Every bootstrap uses the study seed, so a
    rebuilt report gives the same intervals."""
    base = _by_seed(done[baseline], key) if baseline in done else {}
    # Holm's family: the comparisons with a p-value; its strictest step tests at alpha / m
    family = sum(1 for a in arms if (a.get("paired") or {}).get("p_ttest") is not None)
    for entry in arms:
        entry["iqm"] = iqm(entry["per_seed"], seed=seed)
        p = entry.get("paired")
        if not p or not p.get("n"):
            continue
        a = _by_seed(done[entry["name"]], key)
        common = [s for s in a if s in base]
        p["bootstrap"] = {
            **bootstrap_paired([a[s] for s in common], [base[s] for s in common], higher=higher, seed=seed),
            "over": "seeds",
        }
        significant = p.get("better") or p.get("worse")
        p["power"] = None if significant else power(p.get("std_diff"), p["n"], effect=p["mean_diff"], alpha=ALPHA)
        if p["power"] is not None and family > 1:
            strict = power(p.get("std_diff"), p["n"], effect=p["mean_diff"], alpha=ALPHA / family)
            p["power"]["holm"] = {k: strict[k] for k in ("alpha", "mde", "mde_dz", "seeds_needed")}


def _coefficients(res: Mapping[str, Any]) -> dict[str, Any] | None:
    """Mean, sd and norm over seeds of a linear model's fitted weights (``coef`` of the stored results)."""
    coef = res.get("coef")
    if not coef or not coef.get("weight"):
        return None
    w = np.asarray(coef["weight"], dtype=float)
    std = w.std(axis=0, ddof=1).tolist() if len(w) > 1 else None
    mean = w.mean(axis=0)
    return {"names": coef["names"], "mean": mean.tolist(), "std": std, "norm": float(np.linalg.norm(mean))}


def _distance(a: Mapping[str, Any], b: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How far arm ``a``'s fitted weights are from arm ``b``'s (see ``distance`` in the module docstring)."""
    ca, cb = a.get("coef"), b.get("coef")
    if not ca or not cb:
        return None
    wa = dict(zip(ca["seeds"], np.asarray(ca["weight"], dtype=float), strict=True))
    wb = dict(zip(cb["seeds"], np.asarray(cb["weight"], dtype=float), strict=True))
    common = [s for s in wa if s in wb]
    mean_a, mean_b = np.mean(list(wa.values()), axis=0), np.mean(list(wb.values()), axis=0)
    gap = float(np.linalg.norm(mean_a - mean_b))
    norm_b = float(np.linalg.norm(mean_b))
    out: dict[str, Any] = {
        "means": gap,
        "relative": gap / norm_b if norm_b > 0 else None,
        "per_seed": summary_statistics([float(np.linalg.norm(wa[s] - wb[s])) for s in common]) if common else None,
        "other_from_baseline": None,
    }
    cbase = (base or {}).get("coef")
    if cbase:
        out["other_from_baseline"] = float(
            np.linalg.norm(mean_b - np.mean(np.asarray(cbase["weight"], dtype=float), axis=0))
        )
    return out


def _verdict(arms: list[dict[str, Any]], baseline: str, metric: str, higher: bool) -> dict[str, Any]:
    others = [a for a in arms if a.get("paired")]
    better = [a["name"] for a in others if a["paired"].get("better")]
    worse = [a["name"] for a in others if a["paired"].get("worse")]
    best = max(arms, key=lambda a: a["mean"] if higher else -a["mean"])["name"] if arms else None
    test = f"paired t-test over seeds, Holm-corrected over {len(others)} comparison(s), alpha = {ALPHA}"
    if not others:
        text = f"Only the baseline {baseline!r} has results: nothing to compare."
    elif better:
        text = f"{len(better)} noise setting(s) beat no noise ({baseline!r}) on test {metric}: {', '.join(better)} ({test})."
    else:
        text = f"No noise setting beats no noise ({baseline!r}) on test {metric} ({test})."
        if best != baseline:
            text += f" The best mean, {best!r}, is not significantly better."
    if worse:
        text += f" Significantly worse than no noise: {', '.join(worse)}."
    return {"any_better": bool(better), "better": better, "worse": worse, "best_mean": best, "text": text}


def _contrasts(
    config: Mapping[str, Any],
    done: Mapping[str, Any],
    arms: list[dict[str, Any]],
    key: str,
    higher: bool,
    baseline: str,
) -> None:
    """Each arm with ``versus`` gets ``versus``: the other arm's name and the paired comparison (this
    − other), with Holm's correction over the arms that have one (a family of its own); for a linear
    model also the ``distance`` between the two arms' fitted weights."""
    others = {a["name"]: a.get("versus") for a in config["arms"] if a.get("versus")}
    compared = []
    for entry in arms:
        other = others.get(entry["name"])
        if other is None or other not in done:
            continue
        entry["versus"] = {"arm": other, **_paired(done[entry["name"]], done[other], key)}
        distance = _distance(done[entry["name"]], done[other], done.get(baseline))
        if distance is not None:
            entry["versus"]["distance"] = distance
        if entry["versus"].get("n"):
            compared.append(entry["versus"])
    for v, p in zip(compared, holm([v.get("p_ttest") for v in compared]), strict=True):
        d = v["mean_diff"] * (1 if higher else -1)
        v.update(
            p_holm=p,
            better=bool(p is not None and p < ALPHA and d > 0),
            worse=bool(p is not None and p < ALPHA and d < 0),
        )


def _noisy_paired(
    config: Mapping[str, Any],
    cells: Mapping[str, Any],
    done: Mapping[str, Any],
    arms: list[dict[str, Any]],
    baseline: str,
    metric: str,
) -> None:
    """``noisy.paired``: each arm's metric on the noisy test inputs against the baseline's, seed by
    seed (arm − baseline; accuracy for the loss metric). The test noise is drawn in each cell's own
    input units, so where an arm's inputs are scaled otherwise than the baseline's (``standardize``)
    the comparison is kept but marked ``like_for_like: false`` with the reason in ``scale``."""
    if baseline not in done:
        return
    key = "noisy_test_r2" if metric == "r2" else "noisy_test_acc"
    default = (config.get("data") or {}).get("standardize")

    def scaling(name: str) -> Any:
        return (cells.get(name) or {}).get("standardize", default)

    for entry in arms:
        if entry["name"] != baseline and entry.get("noisy"):
            entry["noisy"]["paired"] = _paired(done[entry["name"]], done[baseline], key)
            if scaling(entry["name"]) != scaling(baseline):
                words = {True: "standardized", False: "raw"}
                entry["noisy"]["paired"].update(
                    like_for_like=False,
                    scale=f"its inputs are {words.get(scaling(entry['name']))} and the baseline's {words.get(scaling(baseline))}, "
                    "so the same test-noise σ is a different amount of noise on each",
                )


def _proposed(cells: Mapping[str, Any], done: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Cell metadata with each finished search cell's proposed value and site (stored with its results)."""
    out = {}
    for key, meta in cells.items():
        proposal = (done.get(key) or {}).get("proposal") if meta.get("search") else None
        site = current_site(proposal.get("site")) if proposal else None  # stored runs may hold the earlier names
        out[key] = {**meta, "value": proposal["value"], "site": site} if proposal else meta
    return out


def summarize(study: Mapping[str, Any], done: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The summary (schema in the module docstring) from the study's attributes (``config``,
    ``cells``, ``meta``) and the completed cells' results ``{cell key: attributes}``."""
    config, cells, meta = study["config"], _proposed(study["cells"], done), study.get("meta", {})
    metric = _metric(config, meta.get("task", "classification"))
    key, train_key, higher = _METRIC_KEY[metric]
    baseline = config.get("baseline") or next(a["name"] for a in config["arms"] if not a.get("noise"))
    arms: list[dict[str, Any]] = []
    for name, cmeta in cells.items():
        res = done.get(name)
        if res is None:
            continue
        main = _stats(res, key)
        if main is None:
            continue
        entry: dict[str, Any] = {
            "name": name,
            "arm": cmeta["arm"],
            "grid_value": cmeta["value"],
            "param": cmeta["param"],
        }
        if cmeta.get("search"):
            entry.update(search=True, site=cmeta.get("site"))
        entry.update(main)
        entry["per_seed"] = list(_by_seed(res, key).values())
        entry["train"] = _stats(res, train_key)
        entry["loss"] = _stats(res, "test_loss")
        entry["elapsed_s"] = res.get("elapsed_s")
        coef = _coefficients(res)
        if coef is not None:
            entry["coef"] = coef
        entry["paired"] = None
        if name != baseline and baseline in done:
            entry["paired"] = _paired(res, done[baseline], key)
        arms.append(entry)
    compared = [a for a in arms if a["paired"] and a["paired"].get("n")]
    for a, p in zip(compared, holm([a["paired"].get("p_ttest") for a in compared]), strict=True):
        d = a["paired"]["mean_diff"] * (1 if higher else -1)
        a["paired"]["p_holm"] = p
        a["paired"]["better"] = bool(p is not None and p < ALPHA and d > 0)
        a["paired"]["worse"] = bool(p is not None and p < ALPHA and d < 0)
    _interval_estimates(arms, done, baseline, key, higher, int(config.get("seed") or 0))
    _contrasts(config, done, arms, key, higher, baseline)
    annotate_curvature(arms, done, baseline)
    robustness = annotate_robustness(study, done, arms, metric)
    _noisy_paired(config, cells, done, arms, baseline, metric)
    out = {
        "schema": SCHEMA,
        "study": config["name"],
        "description": config.get("description", ""),
        "claim": config.get("claim", ""),
        "task": meta.get("task"),
        "data": meta,
        "metric": metric,
        "metric_key": key,
        "higher_is_better": higher,
        "baseline": baseline,
        "seeds": max_seeds(config.get("seeds")),
        "cells_total": len(cells),
        "cells_complete": sum(1 for k in cells if k in done),
        "missing": [k for k in cells if k not in done],
        "arms": arms,
        "verdict": _verdict(arms, baseline, metric, higher),
        "selection": selection_summary(config, cells, done, arms, baseline, key, higher),
        "robustness": robustness,
        "sequential": sequential_section(config, study["cells"], done, baseline, key, higher, study.get(EARLIER_MAX)),
    }
    anytime_intervals(arms, out["sequential"])
    out["recommendation"] = recommend(out, {a["name"]: _by_seed(done[a["name"]], key) for a in arms}, ALPHA)
    return out
