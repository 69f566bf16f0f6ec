"""Run a study: check everything, store the plan, train waiting cells in batches, write the report.

:func:`run_study` is idempotent: a second call on the same run directory (or storage) trains only
the cells that have no COMPLETE trial yet, so a killed or interrupted run resumes where it stopped
(see :mod:`noisereg.study.store` for the crash contract). Cells whose noise differs only in float
strengths are claimed together and trained as one engine group, each replica carrying its cell's
strengths; folds of equal sizes share a group.

Seeds: seed index i of every arm trains replica seed ``derive_seed(study.seed, "seed", i)``, so arms
are paired: the same seed index means the same initial weights and batch order (the engine derives
all of a replica's streams from its seed), and only the noise differs.

The run directory: ``study.db`` (the store, unless another storage is given), ``run.json``,
``models/<cell>.pt`` (every test-fold replica's final weights, :mod:`noisereg.study.weights`), and
the report files. Every replica is also evaluated on noisy test inputs while it trains
(``[robustness.monitor]``); after training, :mod:`noisereg.study.measure.robustness` measures the stored
models (calibration, corruptions, certification) unless ``robustness.enabled`` turns it off.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisereg.engine import FoldData, Group, Replica, train_group
from noisereg.study.bridge.prepare import Prepared, prepare, thin_indices
from noisereg.study.bridge.robustness import suite_enabled
from noisereg.study.bridge.sites import site_noise
from noisereg.study.cells import Cell, signature, strengths
from noisereg.study.config import StudyConfig
from noisereg.study.data import Fold
from noisereg.study.measure.robustness import evaluate_robustness
from noisereg.study.report import build_report
from noisereg.study.run.search import propose_cell
from noisereg.study.rundir import RunDirError, write_file
from noisereg.study.store import CellLost, Claim, Store, default_url, masked_url
from noisereg.study.weights import save_cell_models

__all__ = ["run_study", "enqueue_study", "work"]

log = logging.getLogger("noisereg.study")

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in replica-epochs."""

_MAX_ATTR_VALUES = 4000  # values per stored curve attribute (keeps each well under 64 KB of JSON)


def _fold_data(fold: Fold, loss: str, dtype: torch.dtype) -> FoldData:
    def y(v: np.ndarray | None) -> torch.Tensor | None:
        if v is None:
            return None
        return torch.as_tensor(v, dtype=torch.long) if loss == "ce" else torch.as_tensor(v, dtype=dtype)

    def x(v: np.ndarray | None) -> torch.Tensor | None:
        return None if v is None else torch.as_tensor(v, dtype=dtype)

    return FoldData(x(fold.x_train), y(fold.y_train), x(fold.x_test), y(fold.y_test), x(fold.x_val), y(fold.y_val))


def _train_batch(
    prep: Prepared, cells: Sequence[Cell], *, train: Callable[..., Any], device: str, dtype: torch.dtype,
    workers: int, advance: Callable[[int], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[list[int], list[int], dict[str, torch.Tensor]]]]:
    """Train ``cells`` (equal signatures); return each cell's results for the store, and its test
    folds' weights as (seed indices, fold indices, stacked state)."""
    cfg = prep.config
    sites = tuple(site_noise(t) for t in cells[0].noise)
    per_cell = {c.key: strengths(c) for c in cells}
    shared = all(per_cell.values()) or not sites
    collected: dict[str, dict[str, Any]] = {c.key: {"test": {}, "cv": {}} for c in cells}
    fold_ids = sorted({g for c in cells for g in prep.folds_of(c)})
    local = {g: j for j, g in enumerate(fold_ids)}
    rows_of = {c.key: [(c, s, g) for g in prep.folds_of(c) for s in prep.seeds_on(g)] for c in cells}
    if shared:
        groups = [(sites, [row for c in cells for row in rows_of[c.key]])]
    else:
        groups = [(tuple(site_noise(t) for t in c.noise), rows_of[c.key]) for c in cells]
    folds = [_fold_data(prep.folds[g], prep.loss, dtype) for g in fold_ids]
    epochs = None
    weights: dict[str, tuple[list[int], list[int], dict[str, torch.Tensor]]] = {}
    for group_sites, rows in groups:
        replicas = tuple(Replica(prep.seeds[s], local[g], per_cell[c.key] if shared else ()) for c, s, g in rows)
        group = Group(
            model=prep.model, optimizer=prep.optimizer, loss=prep.loss, epochs=cfg.training.epochs,
            batch_size=cfg.training.batch_size, sites=group_sites, replicas=replicas,
            eval_every=cfg.training.eval_every, patience=cfg.training.patience, eval_noise=prep.eval_noise,
        )
        result = train(group, folds, device=device, dtype=dtype, workers=workers, progress=advance)
        epochs = np.asarray(result.epochs)
        for r, (cell, s, g) in enumerate(rows):
            final = {k: float(v[r]) for k, v in result.final.items()}
            final["stopped_epoch"] = float(result.stopped_epoch[r])
            curves = {k: np.asarray(v[r], dtype=np.float64) for k, v in result.curves.items() if not k.startswith("val_")}
            collected[cell.key][prep.folds[g].role].setdefault(s, []).append((g, final, curves))
        for cell in cells:
            kept = sorted((s, g, r) for r, (c, s, g) in enumerate(rows) if c.key == cell.key and prep.folds[g].role == "test")
            if kept:
                index = torch.as_tensor([r for *_, r in kept])
                weights[cell.key] = ([s for s, *_ in kept], [g for _, g, _ in kept], {k: v[index] for k, v in result.weights.items()})
    if epochs is None:
        raise ValueError("no cells to train")
    return {key: _cell_results(prep, key, parts, epochs) for key, parts in collected.items()}, weights


def _round(values: np.ndarray) -> list[Any]:
    return np.vectorize(lambda v: float(f"{v:.6g}") if np.isfinite(v) else None, otypes=[object])(values).tolist()


def _cell_results(prep: Prepared, key: str, parts: dict[str, dict[int, list[Any]]], epochs: np.ndarray) -> dict[str, Any]:
    seeds = sorted(parts["test"])
    finals: dict[str, list[float]] = {}
    curves: dict[str, np.ndarray] = {}
    for s in seeds:
        rows = sorted(parts["test"][s], key=lambda row: row[0])
        for name in rows[0][1]:
            finals.setdefault(name, []).append(float(np.mean([r[1][name] for r in rows])))
        for name in rows[0][2]:
            curves.setdefault(name, []).append(np.mean([r[2][name] for r in rows], axis=0))
    points = max(2, min(prep.config.curve_points, _MAX_ATTR_VALUES // max(1, len(seeds))))
    keep = thin_indices(len(epochs), points)
    out: dict[str, Any] = {
        "cell": key,
        "seeds": seeds,
        "final": finals,
        "epochs": [int(e) for e in epochs[keep]],
        "replicas": sum(len(v) for part in parts.values() for v in part.values()),
    }
    for name, stack in curves.items():
        out[f"curve:{name}"] = _round(np.stack(stack)[:, keep])
    if parts["cv"]:
        cv: dict[str, list[list[float]]] = {}
        for s in sorted(parts["cv"]):
            rows = sorted(parts["cv"][s], key=lambda row: row[0])
            for name in ("loss", "acc", "r2"):  # a CV fold's test part is its held-out part
                if f"test_{name}" in rows[0][1]:
                    cv.setdefault(f"val_{name}", []).append([r[1][f"test_{name}"] for r in rows])
        out["cv"] = cv
    else:
        out["cv"] = None
    return out


def _objective(results: dict[str, Any]) -> float:
    """The trial value (lower is better): mean CV validation loss if the cell has CV folds, else its
    mean test loss. Reports do not select on it."""
    if results.get("cv"):
        return float(np.mean(results["cv"]["val_loss"]))
    return float(np.mean(results["final"]["test_loss"]))


def enqueue_study(
    config: StudyConfig,
    run_dir: str | Path,
    *,
    storage: str | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    retry_for: float = 60.0,
) -> tuple[Prepared, Store]:
    """Check ``config``, create (or reopen) its study in the storage and enqueue every cell that has
    no trial yet, plus the cells that failed for good; train nothing. Return the prepared study and
    its store.

    The first half of :func:`run_study`: workers (:mod:`noisereg.study.run.workers`) do the rest. Run it
    from one process at a time. Arguments and errors as in :func:`run_study`.
    """
    prep = prepare(config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_url(run_dir)
    store = Store(url, config.name, heartbeat_interval=heartbeat_interval, grace_period=grace_period, retry_for=retry_for)
    store.create(config.model_dump(mode="json"), {c.key: c.meta() for c in prep.cells}, prep.meta())
    info = json.dumps({"study": config.name, "storage": masked_url(url)}, indent=2) + "\n"
    run_json = run_dir / "run.json"
    if not run_json.is_file() or run_json.read_text() != info:  # a resumed run writes nothing it need not
        write_file(run_json, info)
    store.requeue_failed()
    store.enqueue([c.key for c in prep.cells])
    return prep, store


def run_study(
    config: StudyConfig,
    run_dir: str | Path,
    *,
    storage: str | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    workers: int = 1,
    progress: Progress | None = None,
    max_replicas: int = 4096,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    retry_for: float = 60.0,
    train: Callable[..., Any] = train_group,
    report: bool = True,
    robustness: bool = True,
) -> dict[str, Any]:
    """Run (or resume) ``config`` into ``run_dir`` and return the summary (see
    :mod:`noisereg.study.report`).

    Args:
        run_dir: folder for the report files, and for the SQLite store unless ``storage`` is given.
        storage: SQLAlchemy URL of the Optuna storage; default ``sqlite:///<run_dir>/study.db``.
        device / dtype / workers: passed to the engine (``workers`` processes share the replicas).
        progress: ``progress(done, total)`` in replica-epochs, including cells done before a resume.
        max_replicas: upper bound on replicas claimed into one engine batch.
        heartbeat_interval / grace_period: seconds; a cell without heartbeat for ``grace_period`` is
            retried (see :class:`~noisereg.study.store.Store`).
        retry_for: seconds to keep retrying a database server that cannot be reached.
        train: the engine entry point (``noisereg.engine.train_group``).
        report: write summary.json, summary.md, report.html and plots at the end.
        robustness: measure the stored models after training when the study's
            ``robustness.enabled`` (default: for classifiers) says so.

    Raises:
        StudyConfigError / DataError: before anything is stored.
        StoreError: the run directory holds a study from another configuration.
        StoreUnreachable: the database server stayed unreachable for ``retry_for`` seconds.
        RunDirError: a file of the run directory could not be written (the message names it; the
            finished cells are stored, the cells in training are marked FAIL where the store allows).
        RuntimeError: cells still failed after the run (their errors are in the store).
    """
    prep, store = enqueue_study(
        config, run_dir, storage=storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period, retry_for=retry_for
    )
    models_dir = Path(run_dir) / "models"
    work(
        prep, store, progress=progress, max_replicas=max_replicas, train=train, device=device, dtype=dtype,
        workers=workers, models_dir=models_dir,
    )
    failed = sorted(store.unfinished())
    if robustness and suite_enabled(config, prep.data.task):
        evaluate_robustness(prep, store, models_dir)
    summary: dict[str, Any] = {}
    if report:

        summary = build_report(run_dir, storage=store.url, study=config.name)
    if failed:
        raise RuntimeError(f"cells without a result after retries: {failed}; rerun to retry them")
    return summary


def work(
    prep: Prepared,
    store: Store,
    *,
    progress: Progress | None = None,
    max_replicas: int = 4096,
    train: Callable[..., Any] = train_group,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    workers: int = 1,
    models_dir: str | Path | None = None,
) -> None:
    """Claim and train waiting cells of ``store``'s study until none is waiting or running.

    Any number of processes may call this on one storage (each claim is exclusive); it returns once
    every cell is COMPLETE or has failed for good. Cells of dead processes are retried after their
    grace period (:meth:`Store.reap`). ``models_dir``: where each cell's final weights are written
    before it is marked COMPLETE (:mod:`noisereg.study.weights`; None keeps none, and the robustness
    suite then has nothing to measure). Other arguments as in :func:`run_study`.
    """
    total = sum(prep.units(c) for c in prep.cells)
    done = sum(prep.units(prep.by_key[k]) for k in store.completed() if k in prep.by_key)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    advance(0)
    sig = {c.key: signature(c) for c in prep.cells}
    told: set[str] = set()
    while True:
        store.reap()
        first = store.claim(1)
        if not first:
            pending = [k for k, s in store.unfinished().items() if s in ("WAITING", "RUNNING")]
            if not pending:
                return
            for key, holder in store.running().items():
                if key not in told:  # say once what this process waits for, and for how long at most
                    told.add(key)
                    log.info("waiting for cell %s, held by %s; should its heartbeat stop, it is retried "
                             "%d s after its last one (grace period)", key, holder, store.grace_period)
            time.sleep(min(store.heartbeat_interval, 2))  # other workers, or a dead one's heartbeat to expire
            continue
        if prep.by_key[first[0].cell].search:  # the sampler proposes this cell's value now
            prep.by_key[first[0].cell] = propose_cell(prep, store, first[0])
        budget = max_replicas - prep.replicas(prep.by_key[first[0].cell])
        claims = first + _claim_more(store, prep, sig[first[0].cell], sig, budget)
        _run_claims(
            store, prep, claims, models_dir, train=train, device=device, dtype=dtype, workers=workers, advance=advance
        )


def _claim_more(store: Store, prep: Prepared, sig: tuple[Any, ...], sigs: dict[str, Any], budget: int) -> list[Claim]:
    claims: list[Claim] = []
    while budget > 0:
        more = store.claim(1, accept=lambda k: sigs.get(k) == sig)
        if not more:
            break
        claims += more
        budget -= prep.replicas(prep.by_key[more[0].cell])
    return claims


def _run_claims(
    store: Store, prep: Prepared, claims: list[Claim], models_dir: str | Path | None, *, advance: Callable[[int], None], **kwargs: Any
) -> None:
    """Train ``claims`` as one batch and complete them. A lost claim (:class:`CellLost`) is logged and
    dropped; any other error marks the batch's cells FAIL and is raised."""
    cells = [prep.by_key[c.cell] for c in claims]
    start = time.perf_counter()
    with store.heartbeat(claims) as beat:

        def step(n: int) -> None:  # between epochs: stop the work of cells this process no longer holds
            beat.check()
            advance(n)

        try:
            results, weights = _train_batch(prep, cells, advance=step, **kwargs)
            beat.check()
            if models_dir is not None:
                model = json.dumps(prep.config.model.model_dump(mode="json"), sort_keys=True)
                for key, (seeds, folds, state) in weights.items():
                    save_cell_models(models_dir, key, model, seeds, folds, state)
        except CellLost as lost:
            log.warning("%s; dropped its work (another process trains it again); going on with the next cell", lost)
            return
        except RunDirError as exc:
            marked = _mark_failed(store, claims, exc)
            try:
                complete = f"{len(store.completed())} of {len(prep.cells)} cells are complete in the store"
            except Exception:  # noqa: BLE001 - a store in that directory may not answer either
                complete = "the cells finished before are complete in the store"
            raise RunDirError(
                exc.path, exc.error,
                f"{complete}; {marked}; once the directory can be written, run the same command again to train the rest",
            ) from None
        except BaseException as exc:  # Ctrl-C included: leave the cells to be retried, then re-raise
            _mark_failed(store, claims, exc)
            raise
    elapsed = time.perf_counter() - start
    units = sum(prep.units(c) for c in cells)
    for claim, cell in zip(claims, cells):
        res = results[cell.key]
        res["elapsed_s"] = round(elapsed * prep.units(cell) / units, 3)
        curves = {k: res.pop(k) for k in [k for k in res if k.startswith("curve:")]}
        try:
            store.complete(claim, _objective(res), {**res, **curves})
        except CellLost as lost:
            log.warning("lost %s; its results are dropped (another process trains it again); going on with the next cell", lost)


def _mark_failed(store: Store, claims: Sequence[Claim], exc: BaseException) -> str:
    """Mark ``claims`` FAIL with ``exc``'s traceback; say what was done, also when the store refuses."""
    error = "".join(traceback.format_exception(exc))
    try:
        for claim in claims:
            store.fail(claim, error)
    except Exception as failure:  # noqa: BLE001 - the first error is the one to raise; say what this means
        log.warning("could not mark cell(s) %s FAIL in the storage (%s: %s); they are retried once their "
                    "claimant is seen to be gone", ", ".join(c.cell for c in claims), type(failure).__name__,
                    str(failure).splitlines()[0] if str(failure) else "")
        return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) could not be marked FAIL either"
    return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) are marked FAIL"
