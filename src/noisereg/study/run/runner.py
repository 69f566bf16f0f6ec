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
``models/<cell>.pt`` (every test-fold replica's final weights, :mod:`noisereg.study.cell_models`), and
the report files. Every replica is also evaluated on noisy test inputs while it trains
(``[robustness.monitor]``); after training, :mod:`noisereg.study.measure.robustness` measures the stored
models (calibration, corruptions, certification) unless ``robustness.enabled`` turns it off.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noisereg.engine import Group, Replica, train_group
from noisereg.study.bridge.prepare import Prepared, fold_data, prepare
from noisereg.study.bridge.robustness import suite_enabled
from noisereg.study.bridge.sites import site_noise
from noisereg.study.cell_models import save_cell_models
from noisereg.study.cells import Cell, signature, strengths
from noisereg.study.config import StudyConfig, parse_stored
from noisereg.study.measure.robustness import evaluate_robustness
from noisereg.study.report import build_report
from noisereg.study.run import dashboard, lifecycle
from noisereg.study.run.heldout import held_out_logits
from noisereg.study.run.lifecycle import Trained, enqueue, open_store
from noisereg.study.run.results import cell_results, linear_coefficients
from noisereg.study.run.rounds import WITHOUT_CV, enqueue_due, extend_rounds, without_cv
from noisereg.study.run.search import propose_cell
from noisereg.study.run.sharpness import training_hessian_trace
from noisereg.study.store import Claim, Store
from noisereg.study.store.base import quiet_optuna

__all__ = ["BuiltinPlan", "run_study", "enqueue_study", "work"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in replica-epochs."""


def _train_batch(
    prep: Prepared,
    cells: Sequence[Cell],
    *,
    train: Callable[..., Any],
    device: str,
    dtype: torch.dtype,
    workers: int,
    advance: Callable[[int], None],
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[list[int], list[int], dict[str, torch.Tensor]]]]:
    """Train ``cells`` (equal signatures); return each cell's results for the store, and its test
    folds' weights as (seed indices, fold indices, stacked state)."""
    sites = tuple(site_noise(t) for t in cells[0].noise)
    per_cell = {c.key: strengths(c) for c in cells}
    shared = all(per_cell.values()) or not sites
    collected: dict[str, dict[str, Any]] = {
        c.key: {"test": {}, "cv": {}, "nested_test": {}, "nested_cv": {}} for c in cells
    }
    fold_ids = sorted({g for c in cells for g in prep.folds_of(c)})
    local = {g: j for j, g in enumerate(fold_ids)}
    rows_of = {c.key: [(c, s, g) for g in prep.folds_of(c) for s in prep.seeds_on(g, c)] for c in cells}
    if shared:
        groups = [(sites, [row for c in cells for row in rows_of[c.key]])]
    else:
        groups = [(tuple(site_noise(t) for t in c.noise), rows_of[c.key]) for c in cells]
    folds = [fold_data(prep.folds[g], prep.loss, dtype) for g in fold_ids]
    epochs = None
    weights: dict[str, tuple[list[int], list[int], dict[str, torch.Tensor]]] = {}
    for group_sites, rows in groups:
        replicas = tuple(Replica(prep.seeds[s], local[g], per_cell[c.key] if shared else ()) for c, s, g in rows)
        group = Group(sites=group_sites, replicas=replicas, **prep.group_options(cells[0]))
        result = train(group, folds, device=device, dtype=dtype, workers=workers, progress=advance)
        epochs = np.asarray(result.epochs)
        for r, (cell, s, g) in enumerate(rows):
            final = {k: float(v[r]) for k, v in result.final.items()}
            final["stopped_epoch"] = float(result.stopped_epoch[r])
            if prep.folds[g].role in ("cv", "nested_cv") and prep.loss != "mse":
                final["held_out_logits"] = held_out_logits(prep, g, result.state_dict(r))  # type: ignore[assignment]
            probes = prep.config.training.hessian_trace
            if probes is not None and prep.folds[g].role == "test":
                final["hessian_trace"] = training_hessian_trace(
                    prep, g, result.state_dict(r), probes=probes, seed=prep.seeds[s]
                )
            curves = {
                k: np.asarray(v[r], dtype=np.float64) for k, v in result.curves.items() if not k.startswith("val_")
            }
            collected[cell.key][prep.folds[g].role].setdefault(s, []).append((g, final, curves))
        for cell in cells:
            kept = sorted(
                (s, g, r) for r, (c, s, g) in enumerate(rows) if c.key == cell.key and prep.folds[g].role == "test"
            )
            if kept:
                index = torch.as_tensor([r for *_, r in kept])
                weights[cell.key] = (
                    [s for s, *_ in kept],
                    [g for _, g, _ in kept],
                    {k: v[index] for k, v in result.weights.items()},
                )
    if epochs is None:
        raise ValueError("no cells to train")
    points = prep.config.curve_points
    results = {key: cell_results(key, parts, epochs, points, prep) for key, parts in collected.items()}
    if prep.config.model.family == "linear" and prep.model.out_features == 1:
        for key, (seeds, _, state) in weights.items():
            results[key]["coef"] = linear_coefficients(seeds, state, prep.data.feature_names)
    return results, weights


def enqueue_study(
    config: StudyConfig,
    run_dir: str | Path,
    *,
    storage: str | None = None,
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    device: str = "cpu",
    retry_for: float = 60.0,
) -> tuple[Prepared, Store]:
    """Check ``config``, create (or reopen) its study in the storage and enqueue every cell that has
    no trial yet, plus the cells that failed for good; train nothing. Return the prepared study and
    its store.

    The first half of :func:`run_study`: workers (:mod:`noisereg.study.run.workers`) do the rest. Run it
    from one process at a time. ``device``: where the study will train (checked: it exists and one
    replica fits in its memory). Arguments and errors as in :func:`run_study`.
    """
    prep = prepare(config, device=device)
    store = open_store(
        run_dir,
        storage,
        config.name,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        retry_for=retry_for,
    )
    if "noise_generator" not in config.model_fields_set and store.exists():
        # a resumed run keeps the generator its cells were drawn with, unless the file names one
        stored = parse_stored(store.attrs()["config"], source=f"study {config.name!r} in the storage")
        config = config.model_copy(update={"noise_generator": stored.noise_generator})
        prep.config = config
    # a sequential study whose max was raised continues from its stored rounds
    extend_rounds(store, config.model_dump(mode="json"), {c.key: c.meta() for c in prep.cells}, prep.meta())
    enqueue(
        store,
        run_dir,
        default_storage=storage is None,
        config=config.model_dump(mode="json"),
        cells={c.key: c.meta() for c in prep.cells},
        meta=prep.meta(),
        upgrade=lambda stored: parse_stored(stored, source="the stored study").model_dump(mode="json"),
        objective=dashboard.OBJECTIVE_NAME,
        due=lambda store: enqueue_due(prep, store, start=True),
    )
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
        StudyConfigError / DataError: before anything is stored (also: ``device`` has no memory for
            one replica, or does not exist).
        StoreError: the run directory cannot be made, or holds a study from another configuration.
        StoreUnreachable: the database server stayed unreachable for ``retry_for`` seconds.
        RunDirError: a file of the run directory could not be written (the message names it; the
            finished cells are stored, the cells in training are marked FAIL where the store allows).
        TrainingError (:mod:`noisereg.study.cells`): training a batch of cells failed (they are stored as FAIL with the traceback).
        RuntimeError: cells still failed after the run (their errors are in the store).
    """
    with quiet_optuna():  # Optuna's INFO lines are no news to a Python caller (the CLI silences them too)
        prep, store = enqueue_study(
            config,
            run_dir,
            storage=storage,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            device=device,
            retry_for=retry_for,
        )
    models_dir = Path(run_dir) / "models"
    with quiet_optuna(), store:
        work(
            prep,
            store,
            progress=progress,
            max_replicas=max_replicas,
            train=train,
            device=device,
            dtype=dtype,
            workers=workers,
            models_dir=models_dir,
        )
        failed = sorted(k for k, s in store.unfinished().items() if s != "MISSING")  # rounds not called for
        if robustness and suite_enabled(config, prep.data.task):
            evaluate_robustness(prep, store, models_dir)
    summary: dict[str, Any] = {}
    if report:
        summary = build_report(run_dir, storage=store.url, study=config.name)
    if failed:
        raise RuntimeError(f"cells without a result after retries: {failed}; rerun to retry them")
    return summary


class BuiltinPlan:
    """A built-in study's cells as the life cycle's :class:`~noisereg.study.run.lifecycle.Plan`: a
    batch of cells of equal signature trains as one engine group (:func:`_train_batch`)."""

    def __init__(
        self,
        prep: Prepared,
        *,
        train: Callable[..., Any],
        device: str,
        dtype: torch.dtype,
        workers: int,
        models_dir: str | Path | None,
    ) -> None:
        self.prep, self.models_dir = prep, models_dir
        self.train, self.device, self.dtype, self.workers = train, device, dtype, workers
        self.keys = [c.key for c in prep.cells]
        self.noise_generator = prep.config.noise_generator
        self._sigs = {c.key: signature(c) for c in prep.cells}
        self._without_cv: object = None  # the store's rounds:without_cv, read at each claim

    def _cell(self, key: str) -> Cell:
        return without_cv(self.prep.by_key[key], self._without_cv)

    def units(self, key: str) -> int:
        return self.prep.units(self._cell(key))

    def replicas(self, key: str) -> int:
        return self.prep.replicas(self._cell(key))

    def signature(self, key: str) -> Hashable:
        return self._sigs[key]

    def claimed(self, store: Store, claim: Claim) -> None:
        if self.prep.by_key[claim.cell].search:  # the sampler proposes this cell's value now
            self.prep.by_key[claim.cell] = propose_cell(self.prep, store, claim)
        if self.prep.by_key[claim.cell].of is not None:  # a round: raced-out cells' rounds skip CV folds
            self._without_cv = store.attrs().get(WITHOUT_CV)

    @contextlib.contextmanager
    def training(self, keys: Sequence[str], advance: Callable[[int], None]) -> Iterator[Callable[[], Trained]]:
        def wait() -> Trained:
            cells = [self._cell(k) for k in keys]
            results, weights = _train_batch(
                self.prep,
                cells,
                train=self.train,
                device=self.device,
                dtype=self.dtype,
                workers=self.workers,
                advance=advance,
            )
            return Trained(results, lambda: self._save(weights))

        yield wait

    def _save(self, weights: dict[str, tuple[list[int], list[int], dict[str, torch.Tensor]]]) -> None:
        if self.models_dir is not None:
            model = json.dumps(self.prep.config.model.model_dump(mode="json"), sort_keys=True)
            for key, (seeds, folds, state) in weights.items():
                save_cell_models(self.models_dir, key, model, seeds, folds, state)

    def due(self, store: Store) -> int:
        return enqueue_due(self.prep, store)  # a sequential study's next round, if any

    def show(self, store: Store, claim: Claim, result: dict[str, Any]) -> float | None:
        params, spaces = dashboard.trial_params(self.prep.config, self.prep.cells, self.prep.by_key[claim.cell])
        shown = dashboard.learning_curve(result)
        if shown is not None:
            result[dashboard.INTERMEDIATE] = shown[0]
        store.show(claim, params, spaces, {} if shown is None else shown[1])
        return dashboard.objective(result)


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
    """Claim and train waiting cells of ``store``'s study until none is waiting or running
    (:func:`noisereg.study.run.lifecycle.run_cells`, the one life cycle of every study).

    Any number of processes may call this on one storage (each claim is exclusive); it returns once
    every cell is COMPLETE or has failed for good. Cells of dead processes are retried after their
    grace period (:meth:`Store.reap`). ``models_dir``: where each cell's final weights are written
    before it is marked COMPLETE (:mod:`noisereg.study.cell_models`; None keeps none, and the robustness
    suite then has nothing to measure). Other arguments as in :func:`run_study`.
    """
    plan = BuiltinPlan(prep, train=train, device=device, dtype=dtype, workers=workers, models_dir=models_dir)
    lifecycle.run_cells(plan, store, progress=progress, max_replicas=max_replicas)
