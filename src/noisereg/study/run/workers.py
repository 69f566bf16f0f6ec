"""Workers: processes, on one machine or many, that train the cells of one study through a shared storage.

One process creates the study and enqueues its cells; any number of workers then train them; the
report is built from the storage at any time (it counts COMPLETE cells only)::

    noisereg study CONFIG --storage URL --out RUN_DIR --no-train   # once: check, create, enqueue
    noisereg worker --storage URL --study NAME                     # N times, anywhere
    noisereg report RUN_DIR                                        # when they are done

A worker reads the study's validated configuration from the storage, so every worker trains the same
study; it checks it against the data (as ``noisereg study`` does) before it claims anything. A study
of the user's own model (a study file with ``model.factory`` and ``data.loader``) is stored with its
study file: the worker imports the factory and the loader by their import paths (the package must be
importable on the worker's machine; where it is not, the worker refuses, naming the key, before it
claims anything), and trains its cells as ``noisereg study FILE`` would (:mod:`noisereg.study.run.own_model`).
A study defined in Python (``study.run_model`` with a function object) has no import path, and a
worker says so. Then it
claims and trains waiting cells (:func:`noisereg.study.run.runner.work`) until no cell is waiting or
running, and returns. What the store guarantees (:mod:`noisereg.study.store`): claims are exclusive,
so no cell is trained twice by two live workers; a worker killed mid-cell (SIGKILL, a lost machine)
stops its heartbeats and its cells are retried by the others once their ``grace_period`` has passed
(at once by a worker on the same machine, which sees the claimant's process gone); a finished cell is
never lost. A database server that restarts is ridden out (reconnection with bounded retries); a
worker whose heartbeat lapsed for the grace period drops that cell's work, says so, and goes on. Ctrl-C (``KeyboardInterrupt``) keeps the finished cells, marks the
cells in training FAIL and enqueues them again at once for the other workers, then re-raises.

Two rules for a study's workers: give them all the same heartbeat interval (a worker with a short
grace period takes a slower-beating worker's cells for dead and retries them, which wastes their
work, though the first COMPLETE trial still counts once); and a study on a data file needs that file
at the same path on every machine. Only the creating process enqueues (and re-enqueues failed cells):
Optuna's duplicate check and insert are two statements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from optuna.trial import TrialState

from noisereg._checks import check_int
from noisereg.engine import train_group
from noisereg.study.config import parse_stored
from noisereg.study.run import lifecycle
from noisereg.study.run.own_model import stored_plan
from noisereg.study.run.own_plan import OWN_MODEL
from noisereg.study.run.runner import Progress, prepare, work
from noisereg.study.store import Store

__all__ = ["run_worker", "WorkerReport", "WORKER_MAX_REPLICAS"]

WORKER_MAX_REPLICAS = 128
"""Default bound on the replicas a worker trains as one batch. The engine's time per replica hardly
falls beyond a hundred replicas (case study: 35 ms per replica-500-epochs at 30 replicas, 29 at 80,
25 at 480), while one worker taking a whole 500-replica σ grid at once would leave the others idle."""


@dataclasses.dataclass(frozen=True)
class WorkerReport:
    """What one worker did: ``trained``, the cells it completed, in order; ``unfinished``, the
    study's cells without a COMPLETE trial when it stopped ({key: state}, see
    :meth:`~noisereg.study.store.Store.unfinished`), e.g. cells that failed for good."""

    trained: tuple[str, ...]
    unfinished: dict[str, str]


def run_worker(
    store: Store,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    workers: int = 1,
    max_replicas: int = WORKER_MAX_REPLICAS,
    progress: Progress | None = None,
    train: Callable[..., Any] = train_group,
    models_dir: str | Path | None = None,
) -> WorkerReport:
    """Train waiting cells of ``store``'s study until none is waiting or running (module docstring).

    Args:
        store: the study in its storage (its heartbeat settings apply to the cells claimed here).
        device / dtype / workers: passed to the engine (``workers`` processes share each batch).
        max_replicas: upper bound (>= 1) on the replicas of compatible cells trained as one batch;
            a single larger cell is trained alone.
        progress: ``progress(done, total)`` in replica-epochs over the whole study.
        train: the engine entry point.
        models_dir: where each finished cell's weights are saved (the study's ``<run dir>/models`` on a
            filesystem the report's machine can read), for the robustness pass; None saves none.

    Raises:
        StoreError: no such study in the storage. StudyConfigError / DataError: the stored study
        cannot run here (e.g. its data file is missing on this machine); nothing was claimed.
        KeyboardInterrupt: after giving the interrupted cells back. Any error of a cell's training,
        after storing that cell as FAIL with its traceback.
    """
    check_int(max_replicas, "max_replicas", low=1)
    stored = store.attrs()["config"]
    try:
        if OWN_MODEL in stored:  # the user's model: its study file names the factory and loader by path
            plan = stored_plan(stored, name=store.study_name, device=device, workers=workers, models_dir=models_dir)
            lifecycle.run_cells(plan, store, progress=progress, max_replicas=max_replicas)
        else:
            config = parse_stored(stored, source=f"study {store.study_name!r} in the storage")
            prep = prepare(config, device=device)
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
    except KeyboardInterrupt:
        store.give_back(store.claimed)
        raise
    trained = tuple(c.cell for c in store.claimed if store.storage.get_trial(c.trial_id).state == TrialState.COMPLETE)
    return WorkerReport(trained=trained, unfinished=store.unfinished())
