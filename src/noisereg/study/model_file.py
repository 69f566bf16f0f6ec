"""A study file of the user's own model (:mod:`noisereg.study.config.user`) run through
:func:`~noisereg.study.api.run_model`, with run_model's errors reported under the file's key paths."""

from __future__ import annotations

from pathlib import Path

from noisereg.study.api import StudyResult, run_model
from noisereg.study.bridge.user import file_arguments
from noisereg.study.config import StudyConfigError, UserStudyConfig

__all__ = ["run_config"]


# run_model's arguments as the keys of a study file (file_arguments builds the one from the other)
_FILE_KEYS = {
    "model": "model.factory",
    "data": "data.loader",
    "loss": "training.loss",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "eval_every": "training.eval_every",
    "task": "training.task",
    "optimizer": "optimizer",
    "folds": "folds",
    "seed": "seed",
    "seeds": "seeds",
    "metric": "metric",
    "name": "name",
    "description": "description",
    "claim": "claim",
    "versus": "arms",
}


def _file_key(cfg: UserStudyConfig, argument: tuple[str | int, ...]) -> str | None:
    """The key path of the study file that set run_model's ``argument`` (see :func:`about`); None
    for an argument the file does not set (``device``, ``storage``, ``workers``: the command's options)."""
    head, *rest = argument
    if head in ("arms", "grid"):
        index = next((i for i, arm in enumerate(cfg.arms) if rest and arm.name == rest[0]), None)
        if index is None:
            return "arms"
        if head == "grid":
            return f"arms[{index}].grid"
        return f"arms[{index}].noise[{rest[1]}]" if len(rest) > 1 else f"arms[{index}]"
    return _FILE_KEYS.get(str(head))


def run_config(
    cfg: UserStudyConfig,
    out: str | Path,
    *,
    storage: str | None = None,
    workers: int = 1,
    device: str = "cpu",
    source: str = "study",
) -> StudyResult:
    """Run a user study file (:mod:`noisereg.study.config.user`) into ``out`` and write its report.

    Raises :class:`StudyConfigError` naming the key of a failing import, call or setting (the key
    path the user wrote, such as ``data.loader`` for a loader that returns no data or ``arms[1].noise[0]``
    for a site that matches no layer)."""
    kwargs = file_arguments(cfg, source=source)
    try:
        result = run_model(
            **kwargs, out=out, storage=storage, workers=workers, device=device, study_file=cfg.model_dump(mode="json")
        )
    except StudyConfigError:
        raise
    except (TypeError, ValueError) as exc:  # run_model's checks (training failures are RuntimeErrors)
        argument = getattr(exc, "argument", None)
        key = _file_key(cfg, argument) if argument else None
        if key is None:
            raise  # an option of the command, named as the argument it sets
        # a site's error names the arm in Python's words; the file's key says it better
        text = str(exc.__cause__ if key.startswith("arms[") and exc.__cause__ is not None else exc)
        raise StudyConfigError([(key, text)], source) from exc
    result.report()
    return result
