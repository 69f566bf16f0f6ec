"""A study's stored results in the tools people already use: a tidy table (CSV, Parquet) and
TensorBoard scalars, from the store alone (no retraining).

The tidy table has one row per cell × seed × (stage, fold, epoch), with the columns

- ``cell``, ``arm``, ``value`` (the grid value, empty without a grid), ``param`` (what the value sets),
  ``seed`` (the seed index);
- ``stage``: ``"curve"`` (a kept evaluation epoch of the learning curves, outer folds averaged as
  stored), ``"final"`` (the end of training), ``"cv"`` (one cross-validation fold's held-out metrics)
  or ``"cv_curve"`` (a kept epoch of a fold's held-out learning curve, e.g. ``val_loss``);
- ``fold`` (CV stages only) and ``epoch`` (curve stages only), empty elsewhere;
- one column per metric (``test_acc``, ``train_loss``, ``val_loss``, ...), empty where a stage has none.

TensorBoard: one run folder per cell (``<out>/<cell>/seed_<s>``) with each curve as a scalar
``curve/<metric>`` at its epoch and each final metric as ``final/<metric>``. Importing this module
imports no torch; the TensorBoard writer does (``torch.utils.tensorboard``, which needs the
``tensorboard`` package).
"""

from __future__ import annotations

import csv
import importlib
import re
from pathlib import Path
from typing import Any, Literal

from noisereg.study.store import Store

__all__ = ["tidy_rows", "export_run", "Format"]

Format = Literal["csv", "parquet", "tensorboard"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "tensorboard")
_KEYS = ["cell", "arm", "value", "param", "seed", "stage", "fold", "epoch"]


def tidy_rows(store: Store) -> list[dict[str, Any]]:
    """The tidy table of every completed cell of ``store`` (see the module docstring)."""
    cells = store.attrs().get("cells", {})
    rows: list[dict[str, Any]] = []
    for key, results in sorted(store.completed().items()):
        meta = cells.get(key, {})
        base = {"cell": key, "arm": meta.get("arm", key), "value": meta.get("value"), "param": meta.get("param")}
        curves = {name.removeprefix("curve:"): v for name, v in results.items() if name.startswith("curve:")}
        epochs = results.get("epochs") or []
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
                    points = {m: v[s][f][e] for m, v in cv_curves.items() if s < len(v) and f < len(v[s]) and e < len(v[s][f])}
                    rows.append({**row, "stage": "cv_curve", "fold": f, "epoch": epoch, **points})
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    metrics = sorted({k for row in rows for k in row} - set(_KEYS))
    return _KEYS + metrics


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = _columns(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as error:
        raise ImportError('--to parquet needs pyarrow: pip install "noisereg[parquet]"') from error
    columns = _columns(rows)
    table = pa.table({c: [row.get(c) for row in rows] for c in columns})
    pq.write_table(table, path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "cell"


def _write_tensorboard(rows: list[dict[str, Any]], folder: Path) -> None:
    try:
        writer_module = importlib.import_module("torch.utils.tensorboard")
    except ImportError as error:
        raise ImportError('--to tensorboard needs tensorboard: pip install "noisereg[export]"') from error
    by_run: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault((row["cell"], row["seed"]), []).append(row)
    for (cell, seed), items in by_run.items():
        writer = writer_module.SummaryWriter(log_dir=str(folder / _slug(cell) / f"seed_{seed}"))
        try:
            for row in items:
                metrics = {k: v for k, v in row.items() if k not in _KEYS and isinstance(v, (int, float))}
                if row["stage"] == "curve":
                    for name, value in metrics.items():
                        writer.add_scalar(f"curve/{name}", value, global_step=int(row["epoch"]))
                elif row["stage"] == "final":
                    for name, value in metrics.items():
                        writer.add_scalar(f"final/{name}", value, global_step=0)
        finally:
            writer.close()


def export_run(store: Store, to: Format, out: str | Path) -> Path:
    """Write ``store``'s results to ``out`` as ``to`` ("csv", "parquet": a file; "tensorboard": a folder).

    Raises ValueError for an unknown format or a store with no completed cell; ImportError naming the
    extra when the format's package is missing.
    """
    if to not in FORMATS:
        raise ValueError(f"{to=} must be one of {FORMATS}")
    rows = tidy_rows(store)
    if not rows:
        raise ValueError("the study has no completed cell yet: nothing to export")
    out = Path(out)
    if to == "tensorboard":
        out.mkdir(parents=True, exist_ok=True)
        _write_tensorboard(rows, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        (_write_csv if to == "csv" else _write_parquet)(rows, out)
    return out
