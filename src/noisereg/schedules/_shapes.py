"""Schedules that are one curve of the step: constant, ramps, decays, steps, intervals, warm-up."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType

from noisereg._checks import check_int, check_real
from noisereg.schedules._base import check_step, hull

__all__ = ["Constant", "Linear", "Cosine", "ExponentialDecay", "Annealed", "Piecewise", "Interval", "WarmUp", "NAMED"]


@dataclasses.dataclass(frozen=True)
class Constant:
    """``value`` at every step.

    Args:
        value: a finite number.

    Raises:
        TypeError, ValueError: ``value`` is not a finite number.

    >>> Constant(0.1)(1000)
    0.1
    """

    value: float

    def __post_init__(self) -> None:
        check_real(self.value, "value")

    def __call__(self, step: int) -> float:
        check_step(step)
        return float(self.value)

    def _span(self) -> tuple[float, float]:
        return hull(self.value)


@dataclasses.dataclass(frozen=True)
class _Ramp:
    """A move from ``start`` to ``end`` over ``steps`` steps after ``begin``, constant outside."""

    start: float
    end: float
    steps: int
    begin: int = 0

    def __post_init__(self) -> None:
        check_real(self.start, "start")
        check_real(self.end, "end")
        check_int(self.steps, "steps", low=1)
        check_int(self.begin, "begin", low=0)

    def _progress(self, step: int) -> float:
        return min(max((check_step(step) - self.begin) / self.steps, 0.0), 1.0)

    def _span(self) -> tuple[float, float]:
        return hull(self.start, self.end)


@dataclasses.dataclass(frozen=True)
class Linear(_Ramp):
    """From ``start`` to ``end`` linearly over ``steps`` steps after ``begin``; constant outside.

    v(t) = start + (end − start) · clamp((t − begin) / steps, 0, 1)

    Args:
        start, end: finite numbers. steps: int >= 1. begin: int >= 0 (default 0).

    Raises:
        TypeError, ValueError: an argument out of its range, naming it.

    >>> [Linear(1.0, 0.0, steps=4)(t) for t in (0, 2, 4, 9)]
    [1.0, 0.5, 0.0, 0.0]
    """

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * self._progress(step)


@dataclasses.dataclass(frozen=True)
class Cosine(_Ramp):
    """Half-cosine from ``start`` to ``end`` over ``steps`` steps after ``begin``.

    v(t) = end + (start − end) · (1 + cos(π · clamp((t − begin) / steps, 0, 1))) / 2

    Args:
        as :class:`Linear`.

    Raises:
        as :class:`Linear`.

    >>> Cosine(1.0, 0.0, steps=10)(5)
    0.5
    """

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * self._progress(step))) / 2.0


@dataclasses.dataclass(frozen=True)
class ExponentialDecay:
    """v(t) = init · rate^(t / decay_steps), or rate^⌊t / decay_steps⌋ with ``staircase=True``.

    Args:
        init: finite. rate: in (0, 1]. decay_steps: int >= 1 (default 1). staircase: default False.

    Raises:
        TypeError, ValueError: an argument out of its range, naming it.

    >>> ExponentialDecay(1.0, 0.5, decay_steps=2, staircase=True)(5)
    0.25
    """

    init: float
    rate: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self) -> None:
        check_real(self.init, "init")
        if not 0 < check_real(self.rate, "rate") <= 1:
            raise ValueError(f"rate={self.rate!r} must be in (0, 1]")
        check_int(self.decay_steps, "decay_steps", low=1)

    def __call__(self, step: int) -> float:
        power = check_step(step) / self.decay_steps
        return self.init * self.rate ** (math.floor(power) if self.staircase else power)

    def _span(self) -> tuple[float, float]:
        return hull(self.init) if self.rate == 1 else hull(self.init, 0.0)


@dataclasses.dataclass(frozen=True)
class Annealed:
    """The annealed gradient-noise std of Neelakantan et al. 2015: σ_t = √(η / (1 + t)^γ).

    The paper states the *variance* σ_t² = η / (1 + t)^γ with η ∈ {0.01, 0.3, 1.0} and γ = 0.55; this
    schedule returns its square root, the standard deviation, like every other noise strength.

    Args:
        eta: η >= 0. gamma: γ >= 0 (default 0.55).

    Raises:
        TypeError, ValueError: ``eta`` or ``gamma`` not a finite number >= 0.

    >>> Annealed(0.3)(0) == 0.3 ** 0.5
    True
    """

    eta: float
    gamma: float = 0.55

    def __post_init__(self) -> None:
        check_real(self.eta, "eta", low=0.0)
        check_real(self.gamma, "gamma", low=0.0)

    def __call__(self, step: int) -> float:
        return math.sqrt(self.eta / (1.0 + check_step(step)) ** self.gamma)

    def _span(self) -> tuple[float, float]:
        return hull(math.sqrt(self.eta), 0.0 if self.gamma > 0 else math.sqrt(self.eta))


@dataclasses.dataclass(frozen=True)
class Piecewise:
    """``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]`` (step function).

    Args:
        boundaries: strictly increasing ints >= 0.
        values: finite numbers, ``len(boundaries) + 1`` of them.

    Raises:
        TypeError, ValueError: a boundary or value out of range, or the lengths do not match.

    >>> [Piecewise((2, 4), (1.0, 0.5, 0.0))(t) for t in (0, 2, 5)]
    [1.0, 0.5, 0.0]
    """

    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        object.__setattr__(self, "values", tuple(self.values))
        for i, b in enumerate(self.boundaries):
            check_int(b, f"boundaries[{i}]", low=0)
        for i, v in enumerate(self.values):
            check_real(v, f"values[{i}]")
        if list(self.boundaries) != sorted(set(self.boundaries)):
            raise ValueError(f"boundaries={self.boundaries!r} must be strictly increasing")
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values must have len(boundaries) + 1 = {len(self.boundaries) + 1} entries, got {len(self.values)}"
            )

    def __call__(self, step: int) -> float:
        t = check_step(step)
        return float(self.values[sum(1 for b in self.boundaries if t >= b)])

    def _span(self) -> tuple[float, float]:
        return hull(*self.values)


@dataclasses.dataclass(frozen=True)
class Interval:
    """Noise at scheduled intervals: ``value`` for ``on`` steps, then ``off_value`` for ``off`` steps, repeating.

    v(t) = value if (t − offset) mod (on + off) < on else off_value (and off_value before ``offset``).
    Wrap with :func:`per_epoch` to count in epochs ("on for k epochs, off for m").

    Args:
        value, off_value: finite numbers. on: int >= 1. off, offset: ints >= 0.

    Raises:
        TypeError, ValueError: an argument out of its range, naming it.

    >>> [Interval(1.0, on=2, off=1)(t) for t in range(6)]
    [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    """

    value: float
    on: int
    off: int
    offset: int = 0
    off_value: float = 0.0

    def __post_init__(self) -> None:
        check_real(self.value, "value")
        check_real(self.off_value, "off_value")
        check_int(self.on, "on", low=1)
        check_int(self.off, "off", low=0)
        check_int(self.offset, "offset", low=0)

    def __call__(self, step: int) -> float:
        t = check_step(step) - self.offset
        if t < 0:
            return float(self.off_value)
        return float(self.value if t % (self.on + self.off) < self.on else self.off_value)

    def _span(self) -> tuple[float, float]:
        return hull(self.value, self.off_value)


@dataclasses.dataclass(frozen=True)
class WarmUp:
    """No noise for ``delay`` steps, then a linear ramp to ``value`` over ``ramp`` steps (curriculum).

    v(t) = value · clamp((t − delay) / ramp, 0, 1); with ``ramp=0`` the noise switches on at ``delay``.

    Args:
        value: finite. delay, ramp: ints >= 0.

    Raises:
        TypeError, ValueError: an argument out of its range, naming it.

    >>> [WarmUp(1.0, delay=2, ramp=2)(t) for t in range(5)]
    [0.0, 0.0, 0.0, 0.5, 1.0]
    """

    value: float
    delay: int
    ramp: int = 0

    def __post_init__(self) -> None:
        check_real(self.value, "value")
        check_int(self.delay, "delay", low=0)
        check_int(self.ramp, "ramp", low=0)

    def __call__(self, step: int) -> float:
        t = check_step(step) - self.delay
        if t < 0:
            return 0.0
        return float(self.value) if self.ramp == 0 else self.value * min(t / self.ramp, 1.0)

    def _span(self) -> tuple[float, float]:
        return hull(0.0, self.value)


NAMED: Mapping[str, type] = MappingProxyType(
    {
        "constant": Constant,
        "linear": Linear,
        "cosine": Cosine,
        "exponential_decay": ExponentialDecay,
        "annealed": Annealed,
        "piecewise": Piecewise,
        "interval": Interval,
        "warmup": WarmUp,
    }
)
"""The schedules a study file names (``std = { schedule = "annealed", eta = 0.3 }``), each taking its
fields as keys; the study's schema of schedule tables is derived from these classes."""
