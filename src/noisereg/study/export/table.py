"""The tidy table: one row per cell × seed × (stage, fold, epoch), read from the store alone; and the
one naming of its values as scalar series that TensorBoard and MLflow share.

Columns:

- ``cell``, ``arm``, ``value`` (the grid value, empty without a grid), ``param`` (what the value sets),
  ``seed`` (the seed index);
- ``stage``: ``"curve"`` (a kept evaluation epoch of the learning curves, outer folds averaged as
  stored), ``"final"`` (the end of training), ``"cv"`` (one cross-validation fold's held-out metrics)
  or ``"cv_curve"`` (a kept epoch of a fold's held-out learning curve, e.g. ``val_loss``);
- ``fold`` (CV stages only) and ``epoch`` (curve stages only), empty elsewhere;
- one column per metric (``test_acc``, ``train_loss``, ``val_loss``, ...), empty where a stage has none;
- stage ``"certified"`` (cells certified by randomized smoothing with the study's current robustness
  settings): one row per seed × radius with ``radius`` and ``certified_acc``, the values that the
  report's paired test per radius (``certified.paired`` in ``summary.json``) compares seed by seed.

- stage ``"comparison"``: one row per cell (``seed``, ``fold``, ``epoch`` empty) with the statistics of
  the study's metric (``summary.json``'s ``metric_key``) that ``summary.json`` gives it, so that the
  export carries the report's evidence, not only the values it is computed from: ``n``, ``mean``,
  ``ci95_low`` / ``ci95_high`` (t-interval over seeds), ``iqm`` and its bootstrap ``iqm_ci95_low`` /
  ``iqm_ci95_high``; and, against the baseline on the same seeds, ``mean_diff``, ``diff_ci95_low`` /
  ``diff_ci95_high`` (paired t-interval), ``p_ttest``, ``p_wilcoxon``, ``p_holm``, ``cohen_dz``,
  ``boot_diff_ci95_low`` / ``boot_diff_ci95_high`` (paired bootstrap), ``p_improvement`` (P(cell better
  than the baseline on a new seed)) with ``p_improvement_ci95_low`` / ``p_improvement_ci95_high``; in a
  sequential study ``anytime_ci_low`` / ``anytime_ci_high`` (the confidence sequence where the
  comparison stopped, at ``anytime_confidence``; empty ends are infinite) and ``stopped_early`` (then
  the fixed-n intervals above are empty: they do not hold after stopping); and
  where the difference is not significant the power figures ``mde``, ``mde_dz``, ``mde_alpha`` (the
  level they are computed at, 0.05 uncorrected), ``seeds_needed``, and ``mde_holm`` at ``mde_holm_alpha``
  (0.05/m, the strictest level of Holm's correction over m comparisons; see
  :mod:`noisereg.study.report.summary`).

A selection with fewer seeds than the study (``selection.seeds``) has CV rows for those seeds only.
Values are written as stored, at full float precision.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from noisereg.study.report.sequential import merged
from noisereg.study.report.summary import summarize
from noisereg.study.store import ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE, Store

__all__ = ["KEYS", "tidy_rows", "columns", "write_csv", "write_parquet", "series"]

KEYS = ["cell", "arm", "value", "param", "seed", "stage", "fold", "epoch"]
_NOT_METRICS = {*KEYS, "radius"}


def _certified_rows(attrs: Mapping[str, Any], key: str, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``"certified"`` rows of one cell; none when it was not certified, or with other settings
    than the study's latest robustness measurement (the report leaves those out too)."""
    stored = attrs.get(ROBUSTNESS_PREFIX + key) or {}
    smoothing = stored.get("smoothing")
    if not smoothing or stored.get("settings") != (attrs.get(ROBUSTNESS_VS_BASELINE) or {}).get("settings"):
        return []
    return [
        {
            **base,
            "seed": seed,
            "stage": "certified",
            "fold": None,
            "epoch": None,
            "radius": radius,
            "certified_acc": share,
        }
        for seed, row in zip(smoothing["seeds"], smoothing["certified"], strict=True)
        for radius, share in zip(smoothing["radii"], row, strict=True)
    ]


def _pair(values: Any) -> tuple[Any, Any]:
    return (values[0], values[1]) if values else (None, None)


def _comparison_rows(attrs: Mapping[str, Any], done: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``"comparison"`` rows: each cell's statistics from the summary (module docstring)."""
    attrs, done = merged(attrs, done)  # a sequential study's rounds, one cell each, as the report reads them
    rows = []
    for arm in summarize(attrs, done)["arms"]:
        meta = (attrs.get("cells") or {}).get(arm["name"], {})
        row: dict[str, Any] = {"cell": arm["name"], "arm": meta.get("arm", arm["arm"]), "value": meta.get("value")}
        row |= {"param": meta.get("param"), "seed": None, "stage": "comparison", "fold": None, "epoch": None}
        row |= {"n": arm["n"], "mean": arm["mean"]}
        row["ci95_low"], row["ci95_high"] = _pair(arm.get("ci95"))
        iqm = arm.get("iqm") or {}
        row["iqm"] = iqm.get("iqm")
        row["iqm_ci95_low"], row["iqm_ci95_high"] = _pair(iqm.get("ci95"))
        p = arm.get("paired") or {}
        if p.get("n"):
            for key in ("mean_diff", "p_ttest", "p_wilcoxon", "p_holm", "cohen_dz"):
                row[key] = p.get(key)
            row["diff_ci95_low"], row["diff_ci95_high"] = _pair(p.get("ci95_diff"))
            boot = p.get("bootstrap") or {}
            row["boot_diff_ci95_low"], row["boot_diff_ci95_high"] = _pair(boot.get("ci95_diff"))
            row["p_improvement"] = boot.get("p_improvement")
            row["p_improvement_ci95_low"], row["p_improvement_ci95_high"] = _pair(boot.get("ci95_improvement"))
            if p.get("anytime"):
                row["anytime_ci_low"], row["anytime_ci_high"] = _pair(p["anytime"]["ci"])
                row |= {"anytime_confidence": p["anytime"]["confidence"], "stopped_early": p["stopped_early"]}
            power = p.get("power") or {}
            row |= {"mde": power.get("mde"), "mde_dz": power.get("mde_dz"), "seeds_needed": power.get("seeds_needed")}
            row["mde_alpha"] = power.get("alpha")
            holm = power.get("holm") or {}
            row |= {"mde_holm": holm.get("mde"), "mde_holm_alpha": holm.get("alpha")}
        rows.append(row)
    return rows


def tidy_rows(store: Store) -> list[dict[str, Any]]:
    """The tidy table of every completed cell of ``store`` (see the module docstring)."""
    attrs = store.attrs()
    cells = attrs.get("cells", {})
    rows: list[dict[str, Any]] = []
    done = store.completed()
    for key, results in sorted(done.items()):
        meta = cells.get(key, {})
        cell = meta.get("of") or key  # a round of a sequential study: its rows are its cell's seeds
        base = {"cell": cell, "arm": meta.get("arm", key), "value": meta.get("value"), "param": meta.get("param")}
        curves = {name.removeprefix("curve:"): v for name, v in results.items() if name.startswith("curve:")}
        epochs = results.get("epochs") or []
        # positions, not seed indices, index the stored lists; CV lists are as long as the selection's
        # seeds, which are the study's first ones (the `s < len(v)` guards)
        for s, seed in enumerate(results.get("seeds", [])):
            row = {**base, "seed": seed}
            for e, epoch in enumerate(epochs):
                metrics = {m: v[s][e] for m, v in curves.items() if s < len(v) and e < len(v[s])}
                rows.append({**row, "stage": "curve", "fold": None, "epoch": epoch, **metrics})
            final = {m: v[s] for m, v in (results.get("final") or {}).items() if s < len(v)}
            rows.append({**row, "stage": "final", "fold": None, "epoch": None, **final})
            cv = dict(results.get("cv") or {})
            val_epochs = cv.pop("val_epochs", [])
            cv_curves = {m.removesuffix("_curve"): cv.pop(m) for m in list(cv) if m.endswith("_curve")}
            folds = max((len(v[s]) for v in cv.values() if s < len(v)), default=0)
            for f in range(folds):
                metrics = {m: v[s][f] for m, v in cv.items() if s < len(v) and f < len(v[s])}
                rows.append({**row, "stage": "cv", "fold": f, "epoch": None, **metrics})
                for e, epoch in enumerate(val_epochs):
                    points = {
                        m: v[s][f][e] for m, v in cv_curves.items() if s < len(v) and f < len(v[s]) and e < len(v[s][f])
                    }
                    rows.append({**row, "stage": "cv_curve", "fold": f, "epoch": epoch, **points})
        rows += _certified_rows(attrs, key, base)
    return rows + (_comparison_rows(attrs, done) if done else [])


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """The table's columns: the keys, then every metric in name order."""
    return KEYS + sorted({k for row in rows for k in row} - set(KEYS))


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` as CSV; an empty field for a missing value, floats as ``repr`` (exact on reading back)."""
    names = columns(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row[c] for c in names})


def write_parquet(rows: list[dict[str, Any]], path: Path, pa: Any, pq: Any) -> None:
    """``rows`` as Parquet through ``pa`` (pyarrow) and ``pq`` (pyarrow.parquet); floats as float64."""
    names = columns(rows)
    pq.write_table(pa.table({c: [row.get(c) for row in rows] for c in names}), path)


# the key each stage's series is drawn over (the x axis)
_STEP: dict[str, str | None] = {
    "curve": "epoch",
    "cv_curve": "epoch",
    "cv": "fold",
    "final": "seed",
    "certified": "seed",
    "comparison": None,  # one value per cell: step 0
}


def series(row: Mapping[str, Any], per_run: tuple[str, ...]) -> Iterator[tuple[str, float, int]]:
    """``(name, value, step)`` of each finite metric of one tidy row, for a target with one run per
    value of ``per_run`` (TensorBoard: cell and seed; MLflow: cell).

    The name is ``<stage>/<metric>``, then ``seed_<s>`` and ``fold_<f>`` where neither the run nor the
    step says them, and ``radius_<r>`` for certified accuracy; the step is the stage's x axis (epoch
    of a curve, fold of a CV score, seed of a final or certified value), 0 where the run holds it and
    for a comparison (``comparison/<statistic>``: one value per cell).
    A missing or non-finite value (a diverged run) has no point: the table keeps it."""
    stage = row["stage"]
    over = _STEP[stage]
    qualifiers = [f"{k}_{row[k]}" for k in ("seed", "fold") if k not in per_run and k != over and row[k] is not None]
    if stage == "certified":
        qualifiers.append(f"radius_{row['radius']!r}")
    step = 0 if over is None or over in per_run else int(row[over])
    for metric, value in sorted(row.items()):
        if metric in _NOT_METRICS or not _finite(value):
            continue
        yield "/".join([stage, metric, *qualifiers]), float(value), step


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
