"""Schedules made of schedules: products, sequences in time, and schedules counted in epochs."""

from __future__ import annotations

import dataclasses
import math

from noisereg._checks import check_int
from noisereg.schedules._base import Schedule, check_schedule, check_step, hull, span

__all__ = ["Product", "Sequence", "per_epoch"]


@dataclasses.dataclass(frozen=True)
class Product:
    """``v(t) = Π_i schedules[i](t)``; e.g. ``Product((Interval(1.0, 5, 5), Annealed(0.3)))``.

    Args:
        schedules: one or more schedules.

    Raises:
        TypeError: an entry is not callable. ValueError: no schedules.

    >>> from noisereg.schedules import Constant, Linear
    >>> Product((Constant(0.5), Linear(1.0, 0.0, steps=2)))(1)
    0.25
    """

    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        if not self.schedules:
            raise ValueError("schedules must not be empty")
        for i, s in enumerate(self.schedules):
            check_schedule(s, f"schedules[{i}]")

    def __call__(self, step: int) -> float:
        return math.prod(s(step) for s in self.schedules)

    def _span(self) -> tuple[float, float] | None:
        low, high = 1.0, 1.0
        for schedule in self.schedules:
            ends = span(schedule)
            if ends is None:
                return None
            low, high = hull(*(a * b for a in (low, high) for b in ends))
        return low, high


@dataclasses.dataclass(frozen=True)
class Sequence:
    """``schedules[i]`` from ``boundaries[i-1]`` on, each seeing its own step count from 0.

    Args:
        schedules: ``len(boundaries) + 1`` schedules.
        boundaries: strictly increasing ints >= 1.

    Raises:
        TypeError: an entry is not callable. ValueError: a boundary out of range or the lengths differ.

    >>> from noisereg.schedules import Constant, Linear
    >>> s = Sequence((Constant(0.0), Linear(1.0, 0.0, steps=2)), boundaries=(3,))
    >>> [s(t) for t in range(6)]
    [0.0, 0.0, 0.0, 1.0, 0.5, 0.0]
    """

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        for i, s in enumerate(self.schedules):
            check_schedule(s, f"schedules[{i}]")
        for i, b in enumerate(self.boundaries):
            check_int(b, f"boundaries[{i}]", low=1)
        if list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError(f"boundaries={self.boundaries!r} must be strictly increasing")
        if len(self.schedules) != len(self.boundaries) + 1:
            raise ValueError(
                f"schedules must have len(boundaries) + 1 = {len(self.boundaries) + 1} entries, "
                f"got {len(self.schedules)}"
            )

    def __call__(self, step: int) -> float:
        t = check_step(step)
        i = sum(1 for b in self.boundaries if t >= b)
        start = self.boundaries[i - 1] if i else 0
        return self.schedules[i](t - start)

    def _span(self) -> tuple[float, float] | None:
        ends = [span(s) for s in self.schedules]
        known = [e for e in ends if e is not None]
        if len(known) < len(ends):
            return None
        return hull(*(v for e in known for v in e))


@dataclasses.dataclass(frozen=True)
class _PerEpoch:
    schedule: Schedule
    steps_per_epoch: int

    def __call__(self, step: int) -> float:
        return self.schedule(check_step(step) // self.steps_per_epoch)

    def _span(self) -> tuple[float, float] | None:
        return span(self.schedule)


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Evaluate ``schedule`` at the epoch ``step // steps_per_epoch`` instead of at the step.

    Args:
        schedule: a schedule written in epochs.
        steps_per_epoch: int >= 1.

    Returns:
        A schedule of the step.

    Raises:
        TypeError: ``schedule`` is not callable. TypeError, ValueError: ``steps_per_epoch`` not an int >= 1.

    >>> from noisereg.schedules import Linear
    >>> per_epoch(Linear(1.0, 0.0, steps=2), steps_per_epoch=10)(15)
    0.5
    """
    check_schedule(schedule, "schedule")
    check_int(steps_per_epoch, "steps_per_epoch", low=1)
    return _PerEpoch(schedule, int(steps_per_epoch))
