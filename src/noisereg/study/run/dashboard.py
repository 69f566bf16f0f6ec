"""What optuna-dashboard shows of a study: each trial's arm, site and strength as parameters, the
objective's name, and a learning curve as intermediate values.

- **Objective**: ``cv_val_loss``, the mean cross-validated validation loss of the cell. Cells trained
  without cross-validation have no objective: their trials are COMPLETE without a value, so the
  dashboard's "best trial" is picked among cross-validated cells only and never on test data.
- **Parameters**: ``cell`` (the store's own), ``arm`` and ``site`` (categorical over the study's arms
  and site combinations, e.g. ``input+before``; ``none`` without noise) and ``strength`` (the grid or
  searched value, else the arm's main strength when it is a number; the distribution spans every
  strength the study can take).
- **Intermediate values**: the mean over seeds of the ``test_loss`` learning curve (another stored
  curve where there is none) at each kept epoch; the trial's user attribute ``intermediate`` names it.
- **Artifacts**: on a SQLite storage the trial's curves (every curve of every seed) are its artifact
  ``curves.json`` rather than user attributes, which stay small (:mod:`noisereg.study.store`); start
  the dashboard with ``--artifact-dir <run dir>/artifacts`` to see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from noisereg.noise.kinds import KINDS
from noisereg.study.cells import Cell
from noisereg.study.config import StudyConfig

__all__ = ["OBJECTIVE_NAME", "INTERMEDIATE", "objective", "trial_params", "learning_curve"]

OBJECTIVE_NAME = "cv_val_loss"
INTERMEDIATE = "intermediate"
"""The user attribute naming the curve shown as intermediate values."""


def objective(results: dict[str, Any]) -> float | None:
    """The trial value (lower is better): the mean CV validation loss; None for a cell without CV."""
    cv = results.get("cv")
    if not cv or "val_loss" not in cv:
        return None
    return float(np.mean(cv["val_loss"]))


def _site(cell: Cell) -> str:
    return "+".join(table.site for table in cell.noise) or "none"


def _strength(cell: Cell) -> float | None:
    if cell.value is not None:
        return float(cell.value)
    if not cell.noise:
        return None
    value = getattr(cell.noise[0], KINDS[cell.noise[0].kind].strength, None)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _strength_bounds(config: StudyConfig, cells: Sequence[Cell]) -> tuple[float, float] | None:
    values = [v for v in (_strength(c) for c in cells) if v is not None]
    for arm in config.arms:
        search = getattr(arm, "search", None)
        if search is not None:
            values += [float(search.low), float(search.high)]
    return (min(values), max(values)) if values else None


def trial_params(
    config: StudyConfig, cells: Sequence[Cell], cell: Cell
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """The dashboard parameters of ``cell`` (a planned cell, or a search cell with its value) and
    their distributions, the same for every trial of the study."""
    arms = list(dict.fromkeys(c.arm for c in cells))
    sites = list(dict.fromkeys(_site(c) for c in cells))
    params: dict[str, Any] = {"arm": cell.arm, "site": _site(cell)}
    spaces: dict[str, BaseDistribution] = {"arm": CategoricalDistribution(arms), "site": CategoricalDistribution(sites)}
    bounds = _strength_bounds(config, cells)
    strength = _strength(cell)
    if bounds is not None and strength is not None and bounds[0] <= strength <= bounds[1]:
        params["strength"] = strength
        spaces["strength"] = FloatDistribution(*bounds)
    return params, spaces


def learning_curve(results: dict[str, Any]) -> tuple[str, dict[int, float]] | None:
    """(curve name, {epoch: mean over seeds}) for the intermediate values, None without curves."""
    names = sorted(k.removeprefix("curve:") for k in results if k.startswith("curve:"))
    if not names or not results.get("epochs"):
        return None
    name = "test_loss" if "test_loss" in names else next((n for n in names if n.startswith("test_")), names[0])
    per_seed = results[f"curve:{name}"]
    curve = {}
    for i, epoch in enumerate(results["epochs"]):
        values = [row[i] for row in per_seed if i < len(row) and row[i] is not None]
        if values:
            curve[int(epoch)] = float(np.mean(values))
    return name, curve
