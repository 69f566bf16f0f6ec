"""Measuring one cell's stored models: calibration, corruption suite, certification; mCE vs the baseline.

Used by :func:`noisereg.study.robustness.evaluate_robustness`, which decides what to measure and
stores the results. Every replica is measured on its test part; a seed's numbers pool its test parts
(with k folds, the whole data set once). Corruption and smoothing noise derive from
``robustness.seed`` and the fold, never from the arm or the training seed, so every model is measured
on the same corrupted inputs (common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from noisereg import metrics
from noisereg.robustness import CorruptionResult, certified_accuracy, certify, evaluate_corruptions
from noisereg.seeding import derive_seed
from noisereg.study.weights import CellModels

if TYPE_CHECKING:
    from noisereg.study.runner import Prepared

__all__ = ["default_radii", "evaluate_cell", "compare_with_baseline"]


def default_radii(sigma: float, n: int, alpha: float, count: int = 9) -> list[float]:
    """``count`` radii from 0 to the largest that ``n`` samples can certify at level ``alpha``:
    σ·Φ⁻¹(alpha^(1/n)), the radius when all n samples agree (Clopper–Pearson lower bound)."""
    largest = sigma * NormalDist().inv_cdf(alpha ** (1.0 / n))
    return [round(float(v), 4) for v in np.linspace(0.0, max(largest, 0.0), count)]


def _module(prep: Prepared, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    from noisereg.engine import MLPSpec, build_module

    spec = prep.model
    with torch.random.fork_rng(devices=[]):  # the modules' own initialization is overwritten below
        module = build_module(spec) if isinstance(spec, MLPSpec) else spec.factory()
    dtype = next(iter(state.values())).dtype
    module = module.to(dtype=dtype)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _round(value: float) -> float | None:
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _rounded(data: Any) -> Any:
    if isinstance(data, float):
        return _round(data)
    if isinstance(data, dict):
        return {k: _rounded(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_rounded(v) for v in data]
    return data


def _pool(results: Sequence[CorruptionResult], weights: Sequence[int]) -> CorruptionResult:
    """One result for a seed's k test parts: every accuracy and loss averaged, weighted by part size."""
    w = np.asarray(weights, dtype=float) / float(sum(weights))

    def mean(get: Callable[[CorruptionResult], Any]) -> Any:
        return np.tensordot(w, np.asarray([get(r) for r in results], dtype=float), axes=1)

    first = results[0]
    return CorruptionResult(
        first.constants,
        first.severities,
        float(mean(lambda r: r.clean_accuracy)),
        float(mean(lambda r: r.clean_loss)),
        {c: tuple(mean(lambda r, c=c: r.accuracy[c]).tolist()) for c in first.accuracy},
        {c: tuple(mean(lambda r, c=c: r.loss[c]).tolist()) for c in first.loss},
        first.strengths,
    )


def evaluate_cell(prep: Prepared, models: CellModels, settings: dict[str, Any], *, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Measure every replica of one cell; return the plain data stored as ``robustness:<cell>``:

    ``settings``; ``seeds`` (seed indices); ``calibration`` {``bins``, ``accuracy``, ``ece``,
    ``adaptive_ece``, ``nll``, ``brier``: [per seed], ``reliability``: bins pooled over seeds
    (:meth:`noisereg.metrics.Reliability.to_dict`)}; ``corruptions`` (or None) {``constants``,
    ``severities``, ``strengths`` {c: [per severity]}, ``clean_accuracy``, ``clean_loss``: [per seed],
    ``accuracy``, ``loss``: {c: [[per severity] per seed]}}; ``smoothing`` (or None) {``sigma``,
    ``n0``, ``n``, ``alpha``, ``radii``, ``seeds``, ``inputs`` (certified inputs per seed),
    ``certified``: [[per radius] per seed], ``abstained``: [share per seed]}.
    """
    sm = settings["smoothing"]
    seeds = sorted(set(models.seeds))
    test_folds = len({g for g in models.folds})
    outputs: dict[int, list[torch.Tensor]] = {s: [] for s in seeds}
    labels: dict[int, list[torch.Tensor]] = {s: [] for s in seeds}
    corrupted: dict[int, list[tuple[CorruptionResult, int]]] = {s: [] for s in seeds}
    certified: dict[int, list[tuple[list[float], float, int]]] = {s: [] for s in seeds}
    smooth_seeds = seeds[: sm["seeds"]] if sm["seeds"] is not None else seeds
    for r, (s, g) in enumerate(zip(models.seeds, models.folds)):
        module = _module(prep, models.state_dict(r))
        dtype = next(iter(models.state.values())).dtype
        fold = prep.folds[g]
        x, y = torch.as_tensor(fold.x_test, dtype=dtype), torch.as_tensor(fold.y_test, dtype=torch.long)
        with torch.no_grad():
            outputs[s].append(module(x))
        labels[s].append(y)
        result = evaluate_corruptions(
            module, x, y, constants=settings["constants"], corruptions=settings["corruptions"],
            severities=tuple(settings["severities"]), scale=settings["scale"],
            seed=derive_seed(settings["seed"], "corruptions", g), batch_size=settings["batch_size"],
        )
        corrupted[s].append((result, len(y)))
        if sm["enabled"] and s in smooth_seeds:
            from noisereg.study.runner import thin_indices

            pick = torch.as_tensor(thin_indices(len(y), math.ceil(sm["inputs"] / test_folds)))
            cert = certify(
                module, x[pick], sigma=sm["sigma"], n0=sm["n0"], n=sm["n"], alpha=sm["alpha"],
                batch_size=sm["batch_size"], seed=derive_seed(settings["seed"], "smoothing", g),
            )
            share = certified_accuracy(cert, y[pick], sm["radii"])
            certified[s].append((share, cert.abstained.double().mean().item(), len(pick)))
        if progress is not None:
            progress(1)
    bins = settings["ece_bins"]
    per_seed = {s: metrics.classification_metrics(torch.cat(outputs[s]), torch.cat(labels[s]), from_logits=True, n_bins=bins) for s in seeds}
    pooled = metrics.reliability(
        torch.cat([o for s in seeds for o in outputs[s]]), torch.cat([t for s in seeds for t in labels[s]]), from_logits=True, n_bins=bins
    )
    calibration: dict[str, Any] = {"bins": bins}
    calibration.update({k: [per_seed[s][k] for s in seeds] for k in ("accuracy", "ece", "adaptive_ece", "nll", "brier")})
    calibration["reliability"] = pooled.to_dict()
    out: dict[str, Any] = {"settings": settings, "seeds": seeds, "calibration": calibration, "corruptions": None, "smoothing": None}
    if seeds:
        pooled_results = [_pool([c for c, _ in corrupted[s]], [n for _, n in corrupted[s]]) for s in seeds]
        first = pooled_results[0].to_dict()
        out["corruptions"] = {
            "constants": first["constants"],
            "severities": first["severities"],
            "strengths": first["strengths"],
            "clean_accuracy": [p.clean_accuracy for p in pooled_results],
            "clean_loss": [p.clean_loss for p in pooled_results],
            "accuracy": {c: [list(p.accuracy[c]) for p in pooled_results] for c in first["accuracy"]},
            "loss": {c: [list(p.loss[c]) for p in pooled_results] for c in first["loss"]},
        }
    if sm["enabled"]:
        done = [s for s in smooth_seeds if certified[s]]
        out["smoothing"] = {
            **{k: sm[k] for k in ("sigma", "n0", "n", "alpha", "radii")},
            "seeds": done,
            "inputs": [sum(n for *_, n in certified[s]) for s in done],
            "certified": [list(np.average([a for a, _, _ in certified[s]], axis=0, weights=[n for *_, n in certified[s]])) for s in done],
            "abstained": [float(np.average([b for _, b, _ in certified[s]], weights=[n for *_, n in certified[s]])) for s in done],
        }
    return _rounded(out)


def _seed_result(stored: dict[str, Any], i: int) -> CorruptionResult:
    c = stored["corruptions"]
    return CorruptionResult.from_dict({
        "constants": c["constants"], "severities": c["severities"], "strengths": c["strengths"],
        "clean_accuracy": c["clean_accuracy"][i], "clean_loss": c["clean_loss"][i],
        "accuracy": {k: v[i] for k, v in c["accuracy"].items()}, "loss": {k: v[i] for k, v in c["loss"].items()},
    })


def compare_with_baseline(results: dict[str, dict[str, Any]], baseline: str) -> dict[str, Any]:
    """mCE and relative mCE of every cell against the baseline cell, per shared seed index."""
    cells: dict[str, Any] = {}
    base = results.get(baseline)
    if base is None or not base.get("corruptions"):
        return {"baseline": baseline, "cells": cells}
    base_index = {s: i for i, s in enumerate(base["seeds"])}
    for key, stored in results.items():
        if not stored.get("corruptions"):
            continue
        seeds, mce, rel = [], [], []
        for i, s in enumerate(stored["seeds"]):
            if s not in base_index:
                continue
            mine, theirs = _seed_result(stored, i), _seed_result(base, base_index[s])
            seeds.append(s)
            for out, compare in ((mce, mine.mce), (rel, mine.relative_mce)):
                try:
                    out.append(_round(compare(theirs)))
                except ValueError:  # a baseline without corruption errors leaves the ratio undefined
                    out.append(None)
        cells[key] = {"seeds": seeds, "mce": mce, "relative_mce": rel}
    return {"baseline": baseline, "cells": cells}
