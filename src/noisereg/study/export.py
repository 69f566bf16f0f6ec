"""A study's stored results in the tools people already use: a tidy table (CSV, Parquet),
TensorBoard scalars and MLflow runs, from the store alone (no retraining).

The tidy table has one row per cell × seed × (stage, fold, epoch), with the columns

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

TensorBoard: one run folder per cell (``<out>/<cell>/seed_<s>``) with each curve as a scalar
``curve/<metric>`` at its epoch and each final metric as ``final/<metric>``.

MLflow: one run per cell (named by the cell key, tagged ``noisereg.cell``) in the experiment named
after the study, in the tracking database ``<out>/mlflow.db`` (SQLite, artifacts in
``<out>/artifacts``; no server: ``mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db`` shows
it). Parameters: ``cell``, ``arm``, ``site`` and ``kind`` (``+``-joined over the cell's noise,
``none`` without), ``strength`` (each noise's main strength, ``+``-joined), ``value`` and ``param``
(the grid or searched value and what it sets), ``seeds`` (the seed indices). Metrics:
``final/<metric>`` per seed (step = seed index) and ``mean/<metric>`` over seeds; ``curve/<metric>``
(mean over seeds) and ``curve/<metric>/seed_<s>`` at each kept epoch (step = epoch); ``cv/<metric>``
per seed (mean over folds, step = seed index) and the dashboards' objective ``cv_val_loss`` where the
cell was cross-validated. The study configuration is each run's artifact ``study.json``. Exporting
again replaces the study's runs (the old ones are deleted).

Importing this module imports no torch; the TensorBoard writer does (``torch.utils.tensorboard``,
which needs the ``tensorboard`` package); MLflow needs ``mlflow-skinny`` (the ``mlflow`` extra).
"""

from __future__ import annotations

import csv
import importlib
import logging
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from noisereg.engine.vocabulary import current_site
from noisereg.noise.kinds import KINDS
from noisereg.study.run.dashboard import OBJECTIVE_NAME, objective
from noisereg.study.store import PROPOSAL, ROBUSTNESS_PREFIX, ROBUSTNESS_VS_BASELINE, Store

__all__ = ["tidy_rows", "export_run", "Format"]

Format = Literal["csv", "parquet", "tensorboard", "mlflow"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "tensorboard", "mlflow")
_KEYS = ["cell", "arm", "value", "param", "seed", "stage", "fold", "epoch"]


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


def tidy_rows(store: Store) -> list[dict[str, Any]]:
    """The tidy table of every completed cell of ``store`` (see the module docstring)."""
    attrs = store.attrs()
    cells = attrs.get("cells", {})
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
                    points = {
                        m: v[s][f][e] for m, v in cv_curves.items() if s < len(v) and f < len(v[s]) and e < len(v[s][f])
                    }
                    rows.append({**row, "stage": "cv_curve", "fold": f, "epoch": epoch, **points})
        rows += _certified_rows(attrs, key, base)
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


def _main_strength(table: Mapping[str, Any]) -> str | None:
    """The name of a stored noise table's main strength field (None for a kind the library does not know)."""
    kind = KINDS.get(table.get("kind", ""))
    return None if kind is None else kind.strength


def _cell_params(key: str, meta: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow parameters of one cell (see the module docstring), as strings."""
    # a run stored before the rename names hidden sites the earlier way
    noise = [{**table, "site": current_site(table.get("site"))} for table in meta.get("noise") or []]
    value, proposal = meta.get("value"), results.get(PROPOSAL)
    if value is None and isinstance(proposal, Mapping) and noise:
        # a search cell: the stored plan holds the arm's table; its sampler proposed the value (and site)
        value = proposal.get("value")
        noise[0]["site"] = current_site(proposal.get("site")) or noise[0].get("site")
        if meta.get("param") == _main_strength(noise[0]):
            noise[0][meta["param"]] = value
    strengths = [table.get(_main_strength(table) or "") for table in noise]
    return {
        "cell": key,
        "arm": meta.get("arm", key),
        "site": "+".join(str(t.get("site")) for t in noise) or "none",
        "kind": "+".join(str(t.get("kind")) for t in noise) or "none",
        "strength": "+".join(str(v) for v in strengths) or "none",
        "value": "none" if value is None else repr(value),
        "param": str(meta.get("param")),
        "seeds": ",".join(str(s) for s in results.get("seeds", [])),
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cell_metrics(results: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(name, value, step) of every MLflow metric of one cell (see the module docstring)."""
    out: list[tuple[str, float, int]] = []
    seeds = results.get("seeds", [])
    for name, values in sorted((results.get("final") or {}).items()):
        kept = [(s, v) for s, v in zip(seeds, values, strict=True) if _number(v)]
        out += [(f"final/{name}", float(v), int(s)) for s, v in kept]
        if kept:
            out.append((f"mean/{name}", sum(v for _, v in kept) / len(kept), 0))
    epochs = results.get("epochs") or []
    for key in sorted(k for k in results if k.startswith("curve:")):
        name = key.removeprefix("curve:")
        for s, row in zip(seeds, results[key], strict=True):
            out += [
                (f"curve/{name}/seed_{s}", float(v), int(e)) for e, v in zip(epochs, row, strict=True) if _number(v)
            ]
        for i, epoch in enumerate(epochs):
            points = [row[i] for row in results[key] if i < len(row) and _number(row[i])]
            if points:
                out.append((f"curve/{name}", sum(points) / len(points), int(epoch)))
    cv = results.get("cv") or {}
    for name, per_seed in sorted(cv.items()):
        if name == "val_epochs" or name.endswith("_curve"):
            continue
        for s, folds in zip(seeds, per_seed, strict=True):
            finite = [v for v in folds if _number(v)]
            if finite:
                out.append((f"cv/{name}", sum(finite) / len(finite), int(s)))
    score = objective(dict(results))
    if score is not None:
        out.append((OBJECTIVE_NAME, score, 0))
    return out


def _write_mlflow(store: Store, folder: Path) -> None:
    try:
        entities = importlib.import_module("mlflow.entities")
        tracking = importlib.import_module("mlflow.tracking")
    except ImportError as error:
        raise ImportError('--to mlflow needs mlflow-skinny: pip install "noisereg[mlflow]"') from error
    folder.mkdir(parents=True, exist_ok=True)
    # MLflow and its migrations announce every table they create at INFO on the root handler
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    client = tracking.MlflowClient(tracking_uri=f"sqlite:///{(folder / 'mlflow.db').resolve()}")
    attrs = store.attrs()
    found = client.get_experiment_by_name(store.study_name)
    if found is None:
        experiment = client.create_experiment(
            store.study_name, artifact_location=(folder / "artifacts").resolve().as_uri()
        )
    else:
        experiment = found.experiment_id
        for old in client.search_runs([experiment], max_results=50000):
            client.delete_run(old.info.run_id)
    cells = attrs.get("cells", {})
    for key, results in sorted(store.completed().items()):
        run = client.create_run(experiment, run_name=key, tags={"noisereg.cell": key})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[entities.Metric(name, value, now, step) for name, value, step in _cell_metrics(results)],
            params=[entities.Param(k, v) for k, v in _cell_params(key, cells.get(key, {}), results).items()],
        )
        client.log_dict(run_id, attrs.get("config", {}), "study.json")
        client.set_terminated(run_id)


def export_run(store: Store, to: Format, out: str | Path) -> Path:
    """Write ``store``'s results to ``out`` as ``to`` ("csv", "parquet": a file; "tensorboard",
    "mlflow": a folder).

    Raises ValueError for an unknown format, a store with no completed cell, or an ``out`` that is a
    file where a folder is written; ImportError naming the extra when the format's package is missing.
    """
    if to not in FORMATS:
        raise ValueError(f"{to=} must be one of {FORMATS}")
    rows = tidy_rows(store)
    if not rows:
        raise ValueError("the study has no completed cell yet: nothing to export")
    out = Path(out)
    if to in ("tensorboard", "mlflow") and out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} (--out) is a file: --to {to} writes a folder")
    if to == "mlflow":
        _write_mlflow(store, out)
    elif to == "tensorboard":
        out.mkdir(parents=True, exist_ok=True)
        _write_tensorboard(rows, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        (_write_csv if to == "csv" else _write_parquet)(rows, out)
    return out
