"""Robustness and calibration of a study's trained models: checks, the training monitor, the suite.

- Before training, :func:`check_robustness` runs :mod:`noisereg.robustness`'s own checks on the
  ``[robustness]`` table (corruption names for the constants, severities, data in [0, 1] for image
  constants) and reports them under the study's key paths; :func:`monitor_noise` is the engine's
  ``eval_noise`` for the noisy evaluation during training.
- After training, :func:`evaluate_robustness` loads every completed cell's stored models
  (:mod:`noisereg.study.cell_models`) and measures each replica on its test part: calibration (accuracy,
  ECE with ``ece_bins`` equal-width bins, adaptive ECE, NLL, Brier; a reliability diagram's bins
  pooled over seeds), the corruption suite (accuracy and loss per corruption and severity) and
  certified accuracy by randomized smoothing. With k folds a seed's numbers pool its k test parts.
  Corruption and smoothing noise derive from ``robustness.seed`` and the fold, never from the arm or
  the training seed, so every model is measured on the same corrupted inputs. mCE and relative mCE
  (Hendrycks & Dietterich 2019) of each cell against the baseline are computed per seed index.

Stored in the study's Optuna storage as study attributes (plain JSON, read by the report without
torch): ``robustness:<cell key>`` per cell (see :func:`noisereg.study.measure.measurements.evaluate_cell`) and ``robustness:vs-baseline``
(``{"settings": ..., "baseline": name, "cells": {key: {"seeds", "mce", "relative_mce"}}}``; the
report shows the cells measured with these settings). A cell is evaluated again
only when its stored settings differ from the requested ones, so the pass resumes after a crash.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from noisereg.study.bridge.prepare import Prepared, prepare
from noisereg.study.cell_models import load_cell_models, model_path
from noisereg.study.config import parse_stored
from noisereg.study.config.robustness import SMOOTHING_SEEDS, RobustnessConfig
from noisereg.study.measure.measurements import (
    compare_with_baseline,
    default_radii,
    evaluate_cell,
)
from noisereg.study.report import build_report, read_run
from noisereg.study.store import ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE, Store

__all__ = ["evaluate_robustness", "measure_run"]


def _settings(config: RobustnessConfig) -> dict[str, Any]:
    """The settings that determine a cell's stored results (everything but the monitor)."""
    out = config.model_dump(mode="json", exclude={"monitor", "enabled"})
    sm = config.smoothing
    if sm.enabled and sm.radii is None:
        out["smoothing"]["radii"] = default_radii(sm.sigma, sm.n, sm.alpha)
    if sm.seeds is None:
        out["smoothing"]["seeds"] = SMOOTHING_SEEDS
    return out


def evaluate_robustness(
    prep: Prepared,
    store: Store,
    models_dir: str | Path,
    *,
    config: RobustnessConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[str]]:
    """Measure every completed cell whose stored robustness results are missing or were made with
    other settings, store them, then store the comparison with the baseline.

    Args:
        prep: the prepared study (data, folds, model spec).
        store: its store; models_dir: the run directory's ``models`` folder.
        config: settings to use instead of the study's ``[robustness]`` table.
        progress: ``progress(done, total)`` in replicas.

    Returns:
        ``{"evaluated": [...], "kept": [...], "without_models": [...]}`` cell keys.
    """
    settings = _settings(config or prep.config.robustness)
    attrs = store.attrs()
    done = store.completed()
    stored = {k: attrs[ROBUSTNESS_PREFIX + k] for k in done if ROBUSTNESS_PREFIX + k in attrs}
    kept = [k for k in done if k in stored and stored[k].get("settings") == settings]
    missing = [k for k in done if k not in kept and not model_path(models_dir, k).is_file()]
    todo = [k for k in done if k not in kept and k not in missing]
    total, count = len(todo) * len(prep.seeds) * sum(f.role == "test" for f in prep.folds), 0

    def advance(n: int) -> None:
        nonlocal count
        count += n
        if progress is not None:
            progress(count, total)

    advance(0)
    for key in todo:
        stored[key] = evaluate_cell(prep, load_cell_models(models_dir, key), settings, progress=advance)
        store.set_attr(ROBUSTNESS_PREFIX + key, stored[key])
    current = {k: v for k, v in stored.items() if v.get("settings") == settings}
    store.set_attr(
        ROBUSTNESS_VS_BASELINE, {"settings": settings, **compare_with_baseline(current, prep.config.baseline_arm)}
    )
    return {"evaluated": todo, "kept": kept, "without_models": missing}


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        out[key] = _merged(out.get(key) or {}, value) if isinstance(value, Mapping) else value
    return out


def measure_run(
    run_dir: str | Path,
    *,
    storage: str | None = None,
    study: str | None = None,
    changes: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the suite on the stored models of a study in ``run_dir`` and rebuild its report.

    The settings are the stored study's ``[robustness]`` table with ``changes`` (a nested mapping of
    the same keys, e.g. ``{"smoothing": {"n": 10000}}``) applied; the suite runs whatever
    ``enabled`` says. Cells already measured with these settings are kept.

    Returns:
        The report's summary, with ``"measured"``: the lists of :func:`evaluate_robustness`.

    Raises:
        StoreError: no study in ``run_dir``. StudyConfigError: bad changes (with their key paths),
            a regression study, or data that do not fit the constants.
    """

    url, name = read_run(run_dir, storage, study)
    with Store(url, name) as store:
        raw = copy.deepcopy(store.attrs()["config"])
        raw["robustness"] = _merged(raw.get("robustness") or {}, {**(changes or {}), "enabled": True})
        prep = prepare(parse_stored(raw, source=f"{name} with the requested changes"))
        measured = evaluate_robustness(prep, store, Path(run_dir) / "models", progress=progress)
    summary = build_report(run_dir, storage=url, study=name)
    return {**summary, "measured": measured}
