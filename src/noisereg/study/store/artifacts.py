"""A completed cell's learning curves as an Optuna artifact, beside the store's database file.

A cell's learning curves (``curve:<name>``, and the CV folds' held-out curves ``cv.*_curve``) are
large, and optuna-dashboard slows down on large attributes: on a SQLite storage they are one Optuna
artifact per trial, :data:`CURVES_ARTIFACT`, in the :class:`~optuna.artifacts.FileSystemArtifactStore`
``artifacts/`` beside the database file (``optuna-dashboard sqlite:///<run dir>/study.db
--artifact-dir <run dir>/artifacts`` shows them). On a server storage (PostgreSQL, MySQL) workers on
other machines share no folder: :func:`artifact_dir` is None there and the curves stay user
attributes. :class:`~noisereg.study.store.Store` writes the artifact before the trial is COMPLETE.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from noisereg._compat.optuna_private import enqueued_cell

__all__ = [
    "CURVES_ARTIFACT",
    "ARTIFACTS_DIR",
    "CurvesMissing",
    "artifact_dir",
    "split_curves",
    "merge_curves",
    "upload_curves",
    "read_curves",
]

CURVES_ARTIFACT = "curves.json"
"""The artifact of a completed trial on a SQLite storage that holds its curves (module docstring)."""
ARTIFACTS_DIR = "artifacts"


class CurvesMissing(RuntimeError):
    """A trial names a curves artifact whose file is not in the artifact folder."""


def artifact_dir(url: str) -> Path | None:
    """The artifact folder of the storage ``url``: ``artifacts/`` beside a SQLite file; None for a
    server or in-memory storage, whose curves stay user attributes.

    >>> artifact_dir("sqlite:////runs/x/study.db").as_posix()
    '/runs/x/artifacts'
    >>> artifact_dir("postgresql://ann@db/runs") is None
    True
    """
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path).parent / ARTIFACTS_DIR


def split_curves(results: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``results`` as (small attributes, curves): ``curve:<name>`` and the ``*_curve`` entries of
    ``cv`` go to the curves (under ``cv``); :func:`merge_curves` puts them back.

    >>> split_curves({"seeds": [0], "curve:a": [[1.0]], "cv": {"val_loss": [[2.0]], "val_loss_curve": [[[3.0]]]}})
    ({'seeds': [0], 'cv': {'val_loss': [[2.0]]}}, {'curve:a': [[1.0]], 'cv': {'val_loss_curve': [[[3.0]]]}})
    """
    small = {k: v for k, v in results.items() if not k.startswith("curve:")}
    curves: dict[str, Any] = {k: v for k, v in results.items() if k.startswith("curve:")}
    cv = small.get("cv")
    if isinstance(cv, Mapping) and any(k.endswith("_curve") for k in cv):
        small["cv"] = {k: v for k, v in cv.items() if not k.endswith("_curve")}
        curves["cv"] = {k: v for k, v in cv.items() if k.endswith("_curve")}
    return small, curves


def merge_curves(small: Mapping[str, Any], curves: Mapping[str, Any]) -> dict[str, Any]:
    """The results that :func:`split_curves` split into ``small`` and ``curves``."""
    out = dict(small)
    for key, value in curves.items():
        out[key] = {**out[key], **value} if key == "cv" and isinstance(out.get(key), Mapping) else value
    return out


def upload_curves(
    artifacts: optuna.artifacts.FileSystemArtifactStore,
    folder: Path,
    storage: optuna.storages.BaseStorage,
    trial: int,
    curves: Mapping[str, Any],
) -> None:
    """Write ``curves`` as the artifact :data:`CURVES_ARTIFACT` of the trial with id ``trial``, in
    ``artifacts`` (kept in ``folder``, made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / CURVES_ARTIFACT
        path.write_text(json.dumps(curves, separators=(",", ":")))
        optuna.artifacts.upload_artifact(
            artifact_store=artifacts, file_path=str(path), study_or_trial=storage.get_trial(trial), storage=storage
        )


def read_curves(
    artifacts: optuna.artifacts.FileSystemArtifactStore,
    folder: Path,
    storage: optuna.storages.BaseStorage,
    trial: optuna.trial.FrozenTrial,
) -> dict[str, Any]:
    """The curves a completed trial keeps as its artifact; {} where it keeps none.

    Raises:
        CurvesMissing: the trial names an artifact whose file is not in ``folder``.
    """
    metas = [m for m in optuna.artifacts.get_all_artifact_meta(trial, storage=storage) if m.filename == CURVES_ARTIFACT]
    if not metas:
        return {}
    try:
        with artifacts.open_reader(metas[-1].artifact_id) as reader:
            return dict(json.load(reader))
    except optuna.artifacts.exceptions.ArtifactNotFound:
        raise CurvesMissing(
            f"the curves of cell {enqueued_cell(trial, trial.params.get('cell'))!r} are missing: no file "
            f"{metas[-1].artifact_id} in {folder} (copy a run directory with its {ARTIFACTS_DIR}/ folder)"
        ) from None
