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

from noisereg.engine import Group, Replica, train_group
from noisereg.seeding import use_noise_generator
from noisereg.study.bridge.prepare import Prepared, fold_data, prepare
from noisereg.study.bridge.robustness import suite_enabled
from noisereg.study.bridge.sites import site_noise
from noisereg.study.cells import Cell, TrainingError, signature, strengths
from noisereg.study.config import StudyConfig, parse_stored
from noisereg.study.measure.robustness import evaluate_robustness
from noisereg.study.report import build_report
from noisereg.study.run import dashboard
from noisereg.study.run.heldout import held_out_logits
from noisereg.study.run.results import cell_results, linear_coefficients
from noisereg.study.run.search import propose_cell
from noisereg.study.run.sharpness import training_hessian_trace
from noisereg.study.rundir import RunDirError, explain, write_file
from noisereg.study.store import DB_NAME, CellLost, Claim, Store, StoreError, default_url, masked_url
from noisereg.study.store_base import check_writable, quiet_optuna
from noisereg.study.weights import save_cell_models

__all__ = ["run_study", "enqueue_study", "work"]

_log = logging.getLogger("noisereg.study")

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
    rows_of = {c.key: [(c, s, g) for g in prep.folds_of(c) for s in prep.seeds_on(g)] for c in cells}
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
    if prep.config.model.kind == "linear" and prep.model.out_features == 1:
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
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission: nothing has been written yet
        raise StoreError(f"run directory {run_dir} cannot be made: {explain(exc)}; choose another --out") from None
    url = storage or default_url(run_dir)
    check_writable(url)
    store = Store(
        url, config.name, heartbeat_interval=heartbeat_interval, grace_period=grace_period, retry_for=retry_for
    )
    if "noise_generator" not in config.model_fields_set and store.exists():
        # a resumed run keeps the generator its cells were drawn with, unless the file names one
        stored = parse_stored(store.attrs()["config"], source=f"study {config.name!r} in the storage")
        config = config.model_copy(update={"noise_generator": stored.noise_generator})
        prep.config = config
    store.create(
        config.model_dump(mode="json"),
        {c.key: c.meta() for c in prep.cells},
        prep.meta(),
        upgrade=lambda stored: parse_stored(stored, source="the stored study").model_dump(mode="json"),
    )
    store.name_objective(dashboard.OBJECTIVE_NAME)
    written = DB_NAME if storage is None else masked_url(url)  # the default file relative: the folder may move
    info = json.dumps({"study": config.name, "storage": written}, indent=2) + "\n"
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
                    _log.info(
                        "waiting for cell %s, held by %s; should its heartbeat stop, it is retried "
                        "%d s after its last one (grace period)",
                        key,
                        holder,
                        store.grace_period,
                    )
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
    store: Store,
    prep: Prepared,
    claims: list[Claim],
    models_dir: str | Path | None,
    *,
    advance: Callable[[int], None],
    **kwargs: Any,
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
            with use_noise_generator(prep.config.noise_generator):
                results, weights = _train_batch(prep, cells, advance=step, **kwargs)
            beat.check()
            if models_dir is not None:
                model = json.dumps(prep.config.model.model_dump(mode="json"), sort_keys=True)
                for key, (seeds, folds, state) in weights.items():
                    save_cell_models(models_dir, key, model, seeds, folds, state)
        except CellLost as lost:
            _log.warning("%s; dropped its work (another process trains it again); going on with the next cell", lost)
            return
        except RunDirError as exc:
            marked = _mark_failed(store, claims, exc)
            try:
                complete = f"{len(store.completed())} of {len(prep.cells)} cells are complete in the store"
            except Exception:  # noqa: BLE001 - a store in that directory may not answer either
                complete = "the cells finished before are complete in the store"
            raise RunDirError(
                exc.path,
                exc.error,
                f"{complete}; {marked}; once the directory can be written, run the same command again to train the rest",
            ) from None
        except BaseException as exc:  # Ctrl-C included: leave the cells to be retried, then re-raise
            _mark_failed(store, claims, exc)
            if not isinstance(exc, Exception):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            keys = [c.cell for c in claims]
            raise TrainingError(
                f"training cell(s) {', '.join(keys)} failed: {type(exc).__name__}: {first}", keys
            ) from exc
    elapsed = time.perf_counter() - start
    units = sum(prep.units(c) for c in cells)
    for claim, cell in zip(claims, cells, strict=True):
        res = results[cell.key]
        res["elapsed_s"] = round(elapsed * prep.units(cell) / units, 3)
        params, spaces = dashboard.trial_params(prep.config, prep.cells, cell)
        shown = dashboard.learning_curve(res)
        if shown is not None:
            res[dashboard.INTERMEDIATE] = shown[0]
        try:
            store.show(claim, params, spaces, {} if shown is None else shown[1])
            store.complete(claim, dashboard.objective(res), res)
        except CellLost as lost:
            _log.warning(
                "lost %s; its results are dropped (another process trains it again); going on with the next cell", lost
            )


def _mark_failed(store: Store, claims: Sequence[Claim], exc: BaseException) -> str:
    """Mark ``claims`` FAIL with ``exc``'s traceback; say what was done, also when the store refuses."""
    error = "".join(traceback.format_exception(exc))
    try:
        for claim in claims:
            store.fail(claim, error)
    except Exception as failure:  # noqa: BLE001 - the first error is the one to raise; say what this means
        _log.warning(
            "could not mark cell(s) %s FAIL in the storage (%s: %s); they are retried once their "
            "claimant is seen to be gone",
            ", ".join(c.cell for c in claims),
            type(failure).__name__,
            str(failure).splitlines()[0] if str(failure) else "",
        )
        return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) could not be marked FAIL either"
    return f"the cell(s) in training ({', '.join(c.cell for c in claims)}) are marked FAIL"
