"""MLflow: one run per cell (named by the cell key, tagged ``noisereg.cell``) in an experiment named
after the study, in a fresh SQLite tracking database ``<out>/mlflow.db`` with artifacts in
``<out>/artifacts`` (no server: ``mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db``).

Parameters: ``cell``, ``arm``, ``site`` and ``kind`` (``+``-joined over the cell's noise, ``none``
without), ``strength`` (each noise's main strength, ``+``-joined), ``value`` and ``param`` (the grid
or searched value and what it sets), ``seeds`` (the seed indices).

Metrics: every value of the tidy table, named by :func:`~noisereg.study.export.table.series` —
``curve/<metric>/seed_<s>`` (step = epoch), ``final/<metric>`` (step = seed index),
``cv/<metric>/seed_<s>`` (step = fold), ``cv_curve/<metric>/seed_<s>/fold_<f>`` (step = epoch),
``certified/certified_acc/radius_<r>`` (step = seed index), ``comparison/<statistic>`` (step 0) — and summaries of them: ``mean/<metric>``
(final, mean over seeds), ``curve/<metric>`` (mean over seeds, step = epoch), ``cv/<metric>`` (mean
over folds, step = seed index) and the dashboards' objective ``cv_val_loss`` where the cell was
cross-validated. The study configuration is each run's artifact ``study.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from noisereg.engine.vocabulary import current_site
from noisereg.noise.kinds import KINDS
from noisereg.study.config.noise import site_of
from noisereg.study.export.table import series
from noisereg.study.run.dashboard import OBJECTIVE_NAME, objective
from noisereg.study.store import PROPOSAL, Store

__all__ = ["cell_params", "cell_metrics", "write_mlflow"]


def _main_strength(table: Mapping[str, Any]) -> str | None:
    """The name of a stored noise table's main strength field (None for a kind the library does not know)."""
    kind = KINDS.get(table.get("kind", ""))
    return None if kind is None else kind.strength


def cell_params(key: str, meta: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow parameters of one cell (see the module docstring), as strings."""
    # a run stored before the rename names hidden sites the earlier way
    noise = [{**table, "site": site_of(table)} for table in meta.get("noise") or []]
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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def cell_metrics(rows: list[dict[str, Any]], results: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(name, value, step) of every MLflow metric of one cell, from its tidy ``rows`` (see the module
    docstring)."""
    out = [point for row in rows for point in series(row, ("cell",))]
    groups: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        for name, value, _ in series(row, ("cell", "seed", "fold")):
            stage, metric = name.split("/")[:2]
            if stage == "final":
                groups.setdefault((f"mean/{metric}", 0), []).append(value)
            elif stage == "curve":
                groups.setdefault((f"curve/{metric}", int(row["epoch"])), []).append(value)
            elif stage == "cv":
                groups.setdefault((f"cv/{metric}", int(row["seed"])), []).append(value)
    out += [(name, _mean(values), step) for (name, step), values in sorted(groups.items())]
    score = objective(dict(results))
    if score is not None:
        out.append((OBJECTIVE_NAME, score, 0))
    return out


@contextlib.contextmanager
def _quiet_and_unpooled() -> Iterator[None]:
    """MLflow and its migrations announce every table they create at INFO on the root handler; and a
    pooled SQLite connection would keep the staged database open after it moved (a leaked handle, and
    on Windows a move that fails), so every session closes its connection (MLflow's own setting)."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    variable = "MLFLOW_SQLALCHEMYSTORE_POOLCLASS"
    before = os.environ.get(variable)
    os.environ[variable] = before or "NullPool"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)


def write_mlflow(
    store: Store, rows: list[dict[str, Any]], folder: Path, final: Path, entities: Any, tracking: Any
) -> None:
    """The tracking database of ``store``'s completed cells in ``folder`` (empty), to be moved to
    ``final``: the experiment's artifact location names ``final``, and the artifacts are written below
    ``folder`` where MLflow will look for them after the move; ``entities`` and ``tracking`` are
    ``mlflow.entities`` and ``mlflow.tracking``."""
    attrs = store.attrs()
    cells, config = attrs.get("cells", {}), attrs.get("config", {})
    root = (final.resolve() / "artifacts").as_uri()
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_cell.setdefault(row["cell"], []).append(row)
    with _quiet_and_unpooled():
        client = tracking.MlflowClient(tracking_uri=f"sqlite:///{(folder / 'mlflow.db').resolve()}")
        experiment = client.create_experiment(store.study_name, artifact_location=root)
        for key, results in sorted(store.completed().items()):
            run = client.create_run(experiment, run_name=key, tags={"noisereg.cell": key})
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[entities.Metric(n, v, now, s) for n, v, s in cell_metrics(by_cell.get(key, []), results)],
                params=[entities.Param(k, v) for k, v in cell_params(key, cells.get(key, {}), results).items()],
            )
            uri = run.info.artifact_uri
            if not uri.startswith(root + "/"):
                raise RuntimeError(f"MLflow put run {run_id}'s artifacts at {uri}, outside {root}")
            artifacts = folder / "artifacts" / uri.removeprefix(root + "/")
            artifacts.mkdir(parents=True)
            (artifacts / "study.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
            client.set_terminated(run_id)
