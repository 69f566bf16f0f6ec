"""A study of the user's own model run by the one life cycle (:mod:`noisereg.study.run.lifecycle`):
in this process, in forked processes, or in ``noisereg worker``s. A worker rebuilds the plan from the
study file stored with the study (:func:`stored_plan`): it imports ``model.factory`` and
``data.loader`` by import path; a study defined in Python has none, and a worker says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from noisereg.study.bridge.user_file import file_arguments, file_error
from noisereg.study.config import StudyConfigError
from noisereg.study.config.user import UserStudyConfig, parse_user_config
from noisereg.study.report import summarize
from noisereg.study.run.lifecycle import enqueue, open_store, run_cells
from noisereg.study.run.own_plan import OWN_MODEL, ModelPlan, plan_model
from noisereg.study.store import DB_NAME, Store
from noisereg.study.store.base import quiet_optuna

__all__ = ["enqueue_plan", "plan_file", "python_defined", "run_plan", "stored_plan"]


def python_defined(name: str) -> StudyConfigError:
    """The refusal of a worker asked to train a study defined in Python: it has no import path."""
    return StudyConfigError(
        [
            (
                "model.factory",
                f"study {name!r} was defined in Python (study.run_model with a function or module object): "
                "a worker imports the model and the data by import path, so a study that workers train needs "
                "a study file naming model.factory = 'package.module:function' and data.loader = "
                "'package.module:function' (importable on every worker's machine); run it with "
                "'noisereg study FILE --storage URL --no-train', then start the workers",
            )
        ],
        f"study {name!r} in the storage",
    )


def plan_file(cfg: UserStudyConfig, *, source: str, **options: Any) -> ModelPlan:
    """:func:`plan_model` of a study file of the user's own model, with ``options`` (``out``,
    ``workers``, ``device``, ...); an error of its checks is a :class:`StudyConfigError` under the
    file's key that set the argument (``model.factory``, ``data.loader``, ``arms[1].noise[0]``)."""
    kwargs = {**file_arguments(cfg, source=source), **options}
    try:
        return plan_model(**kwargs, study_file=cfg.model_dump(mode="json"))
    except (TypeError, ValueError) as exc:  # run_model's checks (training failures are RuntimeErrors)
        keyed = file_error(cfg, exc, source)
        if keyed is None:
            raise  # an option of the command, named as the argument it sets
        raise keyed from exc


def stored_plan(
    stored: Mapping[str, Any],
    *,
    name: str,
    device: str,
    workers: int,
    models_dir: str | Path | None,
) -> ModelPlan:
    """The plan of the own-model study stored as ``stored`` (its configuration), rebuilt in a worker
    from the study file kept with it: ``model.factory`` and ``data.loader`` imported by path.

    Raises StudyConfigError naming ``model.factory`` / ``data.loader`` where either cannot be imported
    or called here, or where the study was defined in Python (nothing to import)."""
    source = f"study {name!r} in the storage"
    if not stored.get(OWN_MODEL):
        raise python_defined(name)
    cfg = parse_user_config(dict(stored[OWN_MODEL]), source=source)
    plan = plan_file(cfg, source=source, out=name, name=name, device=device, workers=workers)
    plan.models_dir = None if models_dir is None else Path(models_dir)
    plan.noise_generator = stored.get("noise_generator", "torch")  # stored before it was recorded: torch's
    return plan


def enqueue_plan(
    plan: ModelPlan,
    out: str | Path,
    *,
    storage: str | None = None,
    heartbeat_interval: int = 10,
    retry_for: float = 60.0,
) -> Store:
    """Create (or reopen) ``plan``'s study in the storage and enqueue its cells; train nothing.
    Returns the store, open (see :mod:`noisereg.study.run.lifecycle`; errors as in :func:`run_plan`)."""
    store = open_store(
        out, storage, plan.name, heartbeat_interval=heartbeat_interval, retry_for=retry_for, option="out"
    )
    try:
        enqueue(
            store,
            out,
            default_storage=storage is None,
            config=plan.config,
            cells=plan.cell_meta,
            meta=plan.meta,
            # a run stored before the generator was recorded drew with torch's
            upgrade=lambda stored: {"noise_generator": "torch", **stored},
        )
    except BaseException:
        store.close()
        raise
    return store


def run_plan(
    plan: ModelPlan,
    out: str | Path,
    *,
    storage: str | None = None,
    heartbeat_interval: int = 10,
    retry_for: float = 60.0,
) -> dict[str, Any]:
    """Enqueue ``plan``'s cells and train the waiting ones here (and in ``plan.workers`` forked
    processes) until none is waiting or running; return the summary.

    With ``workers`` > 1 and a new SQLite store in ``out``, the jobs of every cell start before the
    store is set up (imports, schema, a commit per cell): where this process then claims exactly those
    cells, their training is already under way; otherwise it is stopped and the claims train anew.

    Raises StoreError (``out`` holds a study with other settings, or cannot be written), TrainingError
    (the cells of the failed batch are stored FAIL), RuntimeError (cells without a result: rerun)."""
    fresh = storage is None and not (Path(out) / DB_NAME).exists()
    ahead = None
    try:
        if fresh and plan.workers > 1:
            started = contextlib.ExitStack()
            ahead = plan.keys, started, started.enter_context(plan.training(plan.keys, lambda n: None))
        with quiet_optuna():
            store = enqueue_plan(plan, out, storage=storage, heartbeat_interval=heartbeat_interval, retry_for=retry_for)
        with quiet_optuna(), store:
            run_cells(plan, store, max_replicas=sum(plan.replicas(k) for k in plan.keys), ahead=ahead)
            failed = sorted(store.unfinished())
            if failed:
                raise RuntimeError(f"cells without a result: {failed}; rerun to retry them")
            return summarize(store.attrs(), store.completed())
    finally:
        if ahead is not None:
            ahead[1].close()
