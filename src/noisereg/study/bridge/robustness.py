"""The study's ``[robustness]`` settings turned into what the engine and the suite need, checked first.

:func:`check_robustness` runs the library's own checks against the data before any training, so a
bad corruption name or data outside [0, 1] is reported under its key path; :func:`monitor_noise` is
the noise of the evaluation during training (``Group.eval_noise``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch

from noisereg import noise
from noisereg.robustness import PARAMETERS, corrupt, corruption_strength
from noisereg.robustness.corruptions import Corruption, check_range
from noisereg.study.config import StudyConfig, StudyConfigError
from noisereg.study.config.robustness import RobustnessConfig
from noisereg.study.data import Dataset, Fold

__all__ = ["check_robustness", "monitor_noise", "monitor_meta", "suite_enabled"]


def suite_enabled(config: StudyConfig, task: str) -> bool:
    """Whether the suite runs after training: ``robustness.enabled``, by default for classifiers."""
    enabled = config.robustness.enabled
    if not isinstance(config.seeds, int):  # a sequential study: its cells train unequal seeds (config/sequential.py)
        return False
    return task == "classification" if enabled is None else enabled


def monitor_noise(config: RobustnessConfig) -> Callable[..., torch.Tensor] | None:
    """The noise of the evaluation during training (``Group.eval_noise``), or None when disabled."""
    m = config.monitor
    if not m.enabled:
        return None
    if m.std is not None:
        return noise.Gaussian(std=m.std, clip=None if config.constants == "tabular" else (0.0, 1.0))
    # the study file holds the name as text; the library refuses an unknown one (check_robustness)
    return functools.partial(
        corrupt,
        corruption=cast(Corruption, m.corruption),
        severity=m.severity,
        constants=config.constants,
        scale=config.scale,
    )


def monitor_meta(config: RobustnessConfig) -> dict[str, Any] | None:
    """Plain description of the monitor noise for the report (its parameter's value included)."""
    m = config.monitor
    if not m.enabled:
        return None
    if m.std is not None:
        return {
            "corruption": "gaussian",
            "severity": None,
            "constants": config.constants,
            "parameter": "std",
            "strength": m.std,
        }
    value = corruption_strength(
        cast(Corruption, m.corruption), m.severity, constants=config.constants, scale=config.scale
    )
    return {
        "corruption": m.corruption,
        "severity": m.severity,
        "constants": config.constants,
        "parameter": PARAMETERS[m.corruption],
        "strength": value,
    }


def check_robustness(config: StudyConfig, data: Dataset, folds: Sequence[Fold]) -> None:
    """Run the library's checks on ``[robustness]`` against the data; raise :class:`StudyConfigError`
    with every problem under its key path."""
    r = config.robustness
    problems: list[tuple[str, str]] = []

    def attempt(path: str, check: Callable[[], object]) -> None:
        try:
            check()
        except ValueError as exc:
            problems.append((path, str(exc)))

    uses_constants = r.monitor.enabled and r.monitor.std is None
    if uses_constants:
        attempt(
            "robustness.monitor.corruption",
            lambda: corruption_strength(
                cast(Corruption, r.monitor.corruption), r.monitor.severity, constants=r.constants, scale=r.scale
            ),
        )
    suite = suite_enabled(config, data.task)
    if r.enabled and data.task != "classification":
        problems.append(
            (
                "robustness.enabled",
                f"the corruption suite and certification need a classifier; {data.name!r} is a {data.task}: set enabled = false",
            )
        )
    elif suite:
        for i, name in enumerate(r.corruptions or []):
            # the library's own check of the name is what reports an unknown one here
            def levels(name: str = name) -> list[float]:
                return [
                    corruption_strength(cast(Corruption, name), s, constants=r.constants, scale=r.scale)
                    for s in r.severities
                ]

            attempt(f"robustness.corruptions[{i}]", levels)
    if r.constants != "tabular" and (suite or r.monitor.enabled):
        for fold in folds:

            def in_range(fold: Fold = fold) -> None:
                try:
                    check_range(torch.as_tensor(fold.x_test), r.constants)
                except ValueError as exc:
                    raise ValueError(
                        f"{exc} (the test inputs of fold {fold.name!r}; data.value_range = [low, high] with "
                        "data.standardize = false maps raw pixel values to [0, 1])"
                    ) from None

            attempt("robustness.constants", in_range)
            if problems and problems[-1][0] == "robustness.constants":
                break
    if problems:
        raise StudyConfigError(problems)
