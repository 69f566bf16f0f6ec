"""Private Optuna internals behind public fallbacks (see :mod:`noisereg._compat`); imports no torch.

- :func:`trial_id`: the storage's id of a trial (``FrozenTrial._trial_id``); fallback:
  ``storage.get_trial_id_from_study_id_trial_number`` (one query more).
- :func:`enqueued_cell`: the cell key a trial was enqueued for. The store writes it as a user attribute
  at enqueueing (public); stores made before that keep it only in Optuna's private
  ``system_attrs["fixed_params"]``, read when the private paths are on.
- :data:`CACHED_BACKEND_CALLS`: the private methods of ``RDBStorage`` that Optuna's own cache in front
  of it (``optuna.load_study`` wraps an RDBStorage in one) calls instead of the public interface, so a
  wrapper of the storage interface must cover them too; a name a later Optuna drops is skipped.
"""

from __future__ import annotations

from typing import Any

from noisereg._compat import PRIVATE

__all__ = ["ENQUEUED", "CACHED_BACKEND_CALLS", "trial_id", "enqueued_cell"]

ENQUEUED = "cell"
"""The user attribute in which the store records the cell a trial was enqueued for."""

CACHED_BACKEND_CALLS = (
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)


def trial_id(storage: Any, study_name: str, trial: Any) -> int:
    """The storage's id of ``trial`` (an ``optuna.trial.FrozenTrial`` of the study ``study_name``)."""
    private = getattr(trial, "_trial_id", None) if PRIVATE["enabled"] else None
    if private is not None:
        return int(private)
    study_id = storage.get_study_id_from_name(study_name)
    return int(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))


def enqueued_cell(trial: Any, default: Any = None) -> Any:
    """The cell key ``trial`` was enqueued for, or ``default``."""
    if ENQUEUED in trial.user_attrs:
        return trial.user_attrs[ENQUEUED]
    if PRIVATE["enabled"]:
        return trial.system_attrs.get("fixed_params", {}).get("cell", default)
    return default
