"""A cell's stored results, made from what its replicas returned (see
:data:`noisereg.study.store.RESULT_KEYS`): finals and curves averaged over each seed's folds and
thinned, the CV folds' held-out scores, a nested selection's outer folds, a linear model's weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisereg.engine.loop import LoopResult
from noisereg.study.bridge.prepare import Prepared, thin_indices
from noisereg.study.cell_models import save_cell_models
from noisereg.study.run.heldout import brier, calibrated_losses

__all__ = ["cell_results", "collect_results", "linear_coefficients", "save_results_models"]

# Values per stored curve attribute: stored at full precision (at most 24 characters and a separator a
# value in JSON), each attribute stays under 64 KB, the size of the TEXT column Optuna stores it in on MySQL.
_MAX_ATTR_VALUES = 2400


def linear_coefficients(seeds: Sequence[int], state: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, Any]:
    """A one-output linear model's fitted weights per seed index, each the mean over that seed's test
    folds (``state["0.weight"]`` is [R, 1, features]): ``names`` (the features), ``seeds`` (sorted),
    ``weight`` (one list of floats per seed) and ``bias``."""
    weight = state["0.weight"].double().reshape(len(seeds), -1).numpy()
    bias = state["0.bias"].double().reshape(len(seeds)).numpy()
    order = sorted(set(seeds))
    rows = [[r for r, s in enumerate(seeds) if s == seed] for seed in order]
    return {
        "names": list(names),
        "seeds": order,
        "weight": [weight[r].mean(axis=0).tolist() for r in rows],
        "bias": [float(bias[r].mean()) for r in rows],
    }


def _stored(values: np.ndarray) -> list[Any]:
    """Curve values as JSON takes them, at full precision like the finals (a curve's last point is the
    final it ends at); a diverged replica's NaN or infinity is stored as None."""
    return np.vectorize(lambda v: float(v) if np.isfinite(v) else None, otypes=[object])(values).tolist()


def cell_results(
    key: str,
    parts: dict[str, dict[int, list[Any]]],
    epochs: np.ndarray,
    curve_points: int,
    prep: Prepared | None = None,
) -> dict[str, Any]:
    """A cell's stored results from ``parts[role][seed index] = [(fold, final, curves), ...]``: finals
    and curves averaged over a seed's test folds, curves thinned to about ``curve_points`` epochs, and
    the CV folds' held-out metrics (built-in studies: ``prep`` gives the CV folds' labels)."""
    seeds = sorted(parts["test"])
    finals: dict[str, list[float]] = {}
    curves: dict[str, list[np.ndarray]] = {}
    for s in seeds:
        rows = sorted(parts["test"][s], key=lambda row: row[0])
        for name in rows[0][1]:
            finals.setdefault(name, []).append(float(np.mean([r[1][name] for r in rows])))
        for name in rows[0][2]:
            curves.setdefault(name, []).append(np.mean([r[2][name] for r in rows], axis=0))
    points = max(2, min(curve_points, _MAX_ATTR_VALUES // max(1, len(seeds))))
    keep = thin_indices(len(epochs), points)
    out: dict[str, Any] = {
        "cell": key,
        "seeds": seeds,
        "final": finals,
        "epochs": [int(e) for e in epochs[keep]],
        "replicas": sum(len(v) for part in parts.values() for v in part.values()),
    }
    for name, stack in curves.items():
        out[f"curve:{name}"] = _stored(np.stack(stack)[:, keep])
    out["cv"] = _cv_results(prep, parts["cv"], epochs) if prep is not None and parts.get("cv") else None
    if prep is not None and (parts.get("nested_test") or parts.get("nested_cv")):
        out["nested"] = _nested_results(prep, parts, epochs)
    return out


def _nested_results(prep: Prepared, parts: dict[str, dict[int, list[Any]]], epochs: np.ndarray) -> list[dict[str, Any]]:
    """Per outer fold of a nested selection: ``test`` ({metric: [value per seed]} on the outer fold's
    held-out rows, with ``seeds``) and, for a selection cell, ``cv`` (its inner folds' held-out scores,
    as ``cv`` but without the loss curves)."""
    out = []
    outers = sorted(
        {
            prep.folds[g].outer
            for role in ("nested_test", "nested_cv")
            for rows in parts.get(role, {}).values()
            for g, *_ in rows
        }
    )
    for o in outers:
        test = {s: [r for r in rows if prep.folds[r[0]].outer == o] for s, rows in parts.get("nested_test", {}).items()}
        inner = {s: [r for r in rows if prep.folds[r[0]].outer == o] for s, rows in parts.get("nested_cv", {}).items()}
        seeds = sorted(s for s, rows in test.items() if rows)
        entry: dict[str, Any] = {"seeds": seeds, "test": {}}
        for s in seeds:
            for name, value in test[s][0][1].items():
                if name.startswith("test_"):
                    entry["test"].setdefault(name, []).append(value)
        inner = {s: rows for s, rows in inner.items() if rows}
        entry["cv"] = None
        if inner:  # without the held-out loss curves: the outer folds would multiply their size
            entry["cv"] = {
                k: v for k, v in _cv_results(prep, inner, epochs).items() if k not in ("val_loss_curve", "val_epochs")
            }
        out.append(entry)
    return out


_MAX_CV_CURVE_VALUES = 2000  # seeds × folds × points of the stored held-out loss curves


def _cv_results(prep: Prepared, parts: dict[int, list[Any]], epochs: np.ndarray) -> dict[str, Any]:
    """Per seed × fold held-out scores of a selection cell (the inputs of
    :mod:`noisereg.study.selection`): val_loss, val_acc or val_r2, val_brier and
    val_loss_calibrated (classifiers), and val_loss_curve (thinned) with its ``val_epochs``."""
    cv: dict[str, Any] = {}
    seeds = sorted(parts)
    folds = max(len(parts[s]) for s in seeds)
    keep = thin_indices(
        len(epochs), max(2, min(prep.config.curve_points, _MAX_CV_CURVE_VALUES // (len(seeds) * folds)))
    )
    for s in seeds:
        rows = sorted(parts[s], key=lambda row: row[0])
        for name in ("loss", "acc", "r2"):  # a CV fold's test part is its held-out part
            if f"test_{name}" in rows[0][1]:
                cv.setdefault(f"val_{name}", []).append([r[1][f"test_{name}"] for r in rows])
        cv.setdefault("val_loss_curve", []).append([_stored(np.asarray(r[2]["test_loss"])[keep]) for r in rows])
        if "held_out_logits" in rows[0][1]:
            held = [(r[1]["held_out_logits"], prep.folds[r[0]].y_test) for r in rows]
            cv.setdefault("val_brier", []).append([brier(z, y) for z, y in held])
            cv.setdefault("val_loss_calibrated", []).append(calibrated_losses(held))
    cv["val_epochs"] = [int(e) for e in epochs[keep]]
    return cv


def collect_results(
    keys: Sequence[str],
    rows: Sequence[tuple[Any, int, int]],
    results: Sequence[LoopResult],
    config: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """The stored results of the cells ``keys`` of a study of the user's model
    (:mod:`noisereg.study.run.own_model`), from ``results[i]``, the replica of ``rows[i]`` = (cell,
    seed index, fold index).

    Raises ValueError where replicas recorded different epochs."""
    parts: dict[str, dict[str, dict[int, list[Any]]]] = {key: {"test": {}, "cv": {}} for key in keys}
    epochs: list[int] | None = None
    for (cell, s, g), result in zip(rows, results, strict=True):
        if epochs is None:
            epochs = result.epochs
        elif result.epochs != epochs:
            raise ValueError(
                f"replicas recorded different epochs ({epochs} and {result.epochs}): fit must return the same 'epochs' for every replica"
            )
        parts[cell.key]["test"].setdefault(s, []).append((g, result.final, result.curves))
    return {key: cell_results(key, parts[key], np.asarray(epochs), int(config["curve_points"])) for key in keys}


def save_results_models(
    keys: Sequence[str],
    rows: Sequence[tuple[Any, int, int]],
    results: Sequence[LoopResult],
    models_dir: Path,
    config: Mapping[str, Any],
) -> None:
    """Write each cell's replicas' final weights (``results[i]`` of ``rows[i]``) to ``models_dir``
    (:mod:`noisereg.study.cell_models`)."""
    for key in keys:
        mine = [(s, g, r) for (c, s, g), r in zip(rows, results, strict=True) if c.key == key]
        state = {k: torch.stack([r.state[k] for *_, r in mine]) for k in mine[0][2].state}
        save_cell_models(
            models_dir,
            key,
            json.dumps(config["model"], sort_keys=True),
            [s for s, *_ in mine],
            [g for _, g, _ in mine],
            state,
        )
