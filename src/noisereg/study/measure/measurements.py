"""Measuring one cell's stored models: calibration, corruption suite, certification; mCE vs the baseline.

Used by :func:`noisereg.study.measure.robustness.evaluate_robustness`, which decides what to measure and
stores the results. Every replica is measured on its test part; a seed's numbers pool its test parts
(with k folds, the whole data set once). Corruption and smoothing noise derive from
``robustness.seed`` and the fold, never from the arm or the training seed, so every model is measured
on the same corrupted inputs (common random numbers).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import torch

from noisereg import metrics
from noisereg.engine import MLPSpec, build_module
from noisereg.robustness import (
    CorruptionResult,
    certified_accuracy,
    certify,
    evaluate_corruptions,
)
from noisereg.seeding import derive_seed
from noisereg.study.bridge.prepare import Prepared, thin_indices
from noisereg.study.cell_models import CellModels

__all__ = ["default_radii", "evaluate_cell", "compare_with_baseline"]


def default_radii(sigma: float, n: int, alpha: float, count: int = 9) -> list[float]:
    """``count`` radii from 0 to the largest that ``n`` samples can certify at level ``alpha``:
    σ·Φ⁻¹(alpha^(1/n)), the radius when all n samples agree (Clopper–Pearson lower bound)."""
    largest = sigma * NormalDist().inv_cdf(alpha ** (1.0 / n))
    return [round(float(v), 4) for v in np.linspace(0.0, max(largest, 0.0), count)]


def _module(prep: Prepared, state: dict[str, torch.Tensor]) -> torch.nn.Module:
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

    def mean_table(get: Callable[[CorruptionResult], dict[str, tuple[float, ...]]]) -> dict[str, tuple[float, ...]]:
        rows = {c: np.asarray([get(r)[c] for r in results], dtype=float) for c in get(first)}
        return {c: tuple(np.tensordot(w, row, axes=1).tolist()) for c, row in rows.items()}

    return CorruptionResult(
        first.constants,
        first.severities,
        float(mean(lambda r: r.clean_accuracy)),
        float(mean(lambda r: r.clean_loss)),
        mean_table(lambda r: r.accuracy),
        mean_table(lambda r: r.loss),
        first.strengths,
    )


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread for the duration, as the engine trains: the tensors are small, and two
    threads on a busy machine made the measurements several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Replica:
    """What one replica's measurements give: its clean outputs, corruption result and certificate."""

    outputs: torch.Tensor
    labels: torch.Tensor
    corrupted: CorruptionResult
    certified: list[float] | None
    abstained: float
    inputs: int


def _measure(
    prep: Prepared, state: dict[str, torch.Tensor], fold_index: int, settings: dict[str, Any], *, smooth: bool
) -> _Replica:
    module = _module(prep, state)
    dtype = next(iter(state.values())).dtype
    fold = prep.folds[fold_index]
    x, y = torch.as_tensor(fold.x_test, dtype=dtype), torch.as_tensor(fold.y_test, dtype=torch.long)
    with torch.no_grad():
        outputs = module(x)
    corrupted = evaluate_corruptions(
        module,
        x,
        y,
        constants=settings["constants"],
        corruptions=settings["corruptions"],
        severities=tuple(settings["severities"]),
        scale=settings["scale"],
        seed=derive_seed(settings["seed"], "corruptions", fold_index),
        batch_size=settings["batch_size"],
    )
    sm = settings["smoothing"]
    if not smooth:
        return _Replica(outputs, y, corrupted, None, 0.0, 0)

    pick = torch.as_tensor(thin_indices(len(y), sm["inputs_per_fold"]))
    cert = certify(
        module,
        x[pick],
        sigma=sm["sigma"],
        n0=sm["n0"],
        n=sm["n"],
        alpha=sm["alpha"],
        batch_size=sm["batch_size"],
        seed=derive_seed(settings["seed"], "smoothing", fold_index),
    )
    share = certified_accuracy(cert, y[pick], sm["radii"])
    return _Replica(outputs, y, corrupted, share, cert.abstained.double().mean().item(), len(pick))


def _calibration(parts: dict[int, list[_Replica]], bins: int) -> dict[str, Any]:
    seeds = list(parts)
    per_seed = {
        s: metrics.classification_metrics(
            torch.cat([p.outputs for p in parts[s]]),
            torch.cat([p.labels for p in parts[s]]),
            from_logits=True,
            n_bins=bins,
        )
        for s in seeds
    }
    everything = [p for s in seeds for p in parts[s]]
    pooled = metrics.reliability(
        torch.cat([p.outputs for p in everything]),
        torch.cat([p.labels for p in everything]),
        from_logits=True,
        n_bins=bins,
    )
    out: dict[str, Any] = {"bins": bins}
    out.update({k: [per_seed[s][k] for s in seeds] for k in ("accuracy", "ece", "adaptive_ece", "nll", "brier")})
    out["reliability"] = pooled.to_dict()
    return out


def _corruptions(parts: dict[int, list[_Replica]]) -> dict[str, Any]:
    pooled = [_pool([p.corrupted for p in reps], [len(p.labels) for p in reps]) for reps in parts.values()]
    first: dict[str, Any] = pooled[0].to_dict()
    return {
        "constants": first["constants"],
        "severities": first["severities"],
        "strengths": first["strengths"],
        "clean_accuracy": [p.clean_accuracy for p in pooled],
        "clean_loss": [p.clean_loss for p in pooled],
        "accuracy": {c: [list(p.accuracy[c]) for p in pooled] for c in first["accuracy"]},
        "loss": {c: [list(p.loss[c]) for p in pooled] for c in first["loss"]},
    }


def _smoothing(parts: dict[int, list[_Replica]], sm: dict[str, Any]) -> dict[str, Any]:
    done = [s for s, reps in parts.items() if reps[0].certified is not None]
    weights = {s: [p.inputs for p in parts[s]] for s in done}
    return {
        **{k: sm[k] for k in ("sigma", "n0", "n", "alpha", "radii")},
        "seeds": done,
        "inputs": [sum(weights[s]) for s in done],
        "certified": [np.average([p.certified for p in parts[s]], axis=0, weights=weights[s]).tolist() for s in done],
        "abstained": [float(np.average([p.abstained for p in parts[s]], weights=weights[s])) for s in done],
    }


def evaluate_cell(
    prep: Prepared, models: CellModels, settings: dict[str, Any], *, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Measure every replica of one cell; return the plain data stored as ``robustness:<cell>``:

    ``settings``; ``seeds`` (seed indices); ``calibration`` {``bins``, ``accuracy``, ``ece``,
    ``adaptive_ece``, ``nll``, ``brier``: [per seed], ``reliability``: bins pooled over seeds
    (:meth:`noisereg.metrics.Reliability.to_dict`)}; ``corruptions`` {``constants``,
    ``severities``, ``strengths`` {c: [per severity]}, ``clean_accuracy``, ``clean_loss``: [per seed],
    ``accuracy``, ``loss``: {c: [[per severity] per seed]}}; ``smoothing`` (or None) {``sigma``,
    ``n0``, ``n``, ``alpha``, ``radii``, ``seeds``, ``inputs`` (certified inputs per seed),
    ``certified``: [[per radius] per seed], ``abstained``: [share per seed]}.

    ``settings`` are the suite's settings as :func:`noisereg.study.measure.robustness.evaluate_robustness`
    resolves them (radii and smoothing seeds filled in). A seed's ``smoothing.inputs`` test inputs are
    spread evenly over its test parts.
    """
    sm = dict(settings["smoothing"])
    seeds = sorted(set(models.seeds))
    sm["inputs_per_fold"] = math.ceil(sm["inputs"] / len(set(models.folds)))
    certified_seeds = set(seeds[: sm["seeds"]] if sm["enabled"] else ())
    parts: dict[int, list[_Replica]] = {s: [] for s in seeds}
    with _one_thread():
        for r, (s, g) in enumerate(zip(models.seeds, models.folds, strict=True)):
            parts[s].append(
                _measure(prep, models.state_dict(r), g, {**settings, "smoothing": sm}, smooth=s in certified_seeds)
            )
            if progress is not None:
                progress(1)
        out = {
            "settings": settings,
            "seeds": seeds,
            "calibration": _calibration(parts, settings["ece_bins"]),
            "corruptions": _corruptions(parts),
            "smoothing": _smoothing(parts, sm) if sm["enabled"] else None,
        }
    return _rounded(out)


def _seed_result(stored: dict[str, Any], i: int) -> CorruptionResult:
    c = stored["corruptions"]
    return CorruptionResult.from_dict(
        {
            "constants": c["constants"],
            "severities": c["severities"],
            "strengths": c["strengths"],
            "clean_accuracy": c["clean_accuracy"][i],
            "clean_loss": c["clean_loss"][i],
            "accuracy": {k: v[i] for k, v in c["accuracy"].items()},
            "loss": {k: v[i] for k, v in c["loss"].items()},
        }
    )


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
        seeds: list[int] = []
        mce: list[float | None] = []
        rel: list[float | None] = []
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
