"""A study file of the user's own model (:mod:`noisereg.study.config.user`) run through the one
pipeline (:mod:`noisereg.study.run.own_model`), with run_model's errors reported under the file's key
paths: trained here, or only enqueued for ``noisereg worker``s, which import its factory and loader."""

from __future__ import annotations

from pathlib import Path

from noisereg.study.api import StudyResult
from noisereg.study.config import UserStudyConfig
from noisereg.study.run.own_model import enqueue_plan, plan_file, run_plan

__all__ = ["enqueue_config", "run_config"]


def run_config(
    cfg: UserStudyConfig,
    out: str | Path,
    *,
    storage: str | None = None,
    workers: int = 1,
    device: str = "cpu",
    heartbeat_interval: int = 10,
    retry_for: float = 60.0,
    source: str = "study",
) -> StudyResult:
    """Run a user study file (:mod:`noisereg.study.config.user`) into ``out`` and write its report.

    Raises :class:`StudyConfigError` naming the key of a failing import, call or setting (the key
    path the user wrote, such as ``data.loader`` for a loader that returns no data or ``arms[1].noise[0]``
    for a site that matches no layer)."""
    plan = plan_file(cfg, source=source, out=out, workers=workers, device=device)
    summary = run_plan(plan, out, storage=storage, heartbeat_interval=heartbeat_interval, retry_for=retry_for)
    result = StudyResult(Path(out), plan.name, summary)
    result.report()
    return result


def enqueue_config(
    cfg: UserStudyConfig,
    out: str | Path,
    *,
    storage: str | None = None,
    device: str = "cpu",
    heartbeat_interval: int = 10,
    retry_for: float = 60.0,
    source: str = "study",
) -> tuple[int, dict[str, str]]:
    """Check a user study file, create its study in the storage and enqueue its cells for
    ``noisereg worker``s (which import ``model.factory`` and ``data.loader`` by path); train nothing.
    Returns the number of cells and the cells without a result ({key: state}). Errors as in
    :func:`run_config`."""
    plan = plan_file(cfg, source=source, out=out, device=device)
    with enqueue_plan(plan, out, storage=storage, heartbeat_interval=heartbeat_interval, retry_for=retry_for) as store:
        return len(plan.keys), store.unfinished()
