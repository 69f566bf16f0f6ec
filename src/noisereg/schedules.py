"""Noise strength as a pure function of the training step, and the clock that supplies the step.

Every strength in noisereg is a number or a :class:`Schedule`. A schedule is a frozen dataclass whose
``__call__(step)`` returns the strength at that (0-based) step; it holds no state, so the same step
always gives the same value. :func:`resolve` is the one place where a strength is turned into a number.
Schedules written in epochs are wrapped with :func:`per_epoch`, which maps a step to its epoch.

A :class:`Clock` counts steps. ``noisereg.layers.bind_clock(model)`` gives a model one clock that
advances by one on each training-mode forward of the model; a clock made with ``auto=False`` is
driven by the user (``clock.tick()`` or ``clock.step = n``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from noisereg._checks import check_int, check_real

__all__ = [
    "Schedule",
    "Constant",
    "Linear",
    "Cosine",
    "ExponentialDecay",
    "Annealed",
    "Piecewise",
    "Interval",
    "WarmUp",
    "Product",
    "Sequence",
    "per_epoch",
    "resolve",
    "span",
    "Clock",
    "NAMED",
]


@runtime_checkable
class Schedule(Protocol):
    """A pure function of the step: ``schedule(step) -> float``."""

    def __call__(self, step: int) -> float: ...


def resolve(strength: object, step: int) -> object:
    """The value of ``strength`` at ``step``: schedules (any callable of the step) are evaluated,
    numbers and tensors are returned as they are."""
    if callable(strength):
        return strength(step)
    return strength


def span(schedule: object) -> tuple[float, float] | None:
    """The smallest closed interval [low, high] that holds every value of a built-in ``schedule``;
    None for any other callable, whose values cannot be known before it is called.

    Decays (:class:`ExponentialDecay`, :class:`Annealed`) approach 0 without reaching it; their
    interval includes 0. Configs use this to refuse, when they are made, a schedule that would leave
    a strength's range at some step.

    >>> span(Linear(1.0, -1.0, steps=10))
    (-1.0, 1.0)
    >>> span(lambda step: 0.1) is None
    True
    """
    ends = getattr(schedule, "_span", None)
    return ends() if callable(ends) else None


def _hull(*values: float) -> tuple[float, float]:
    return min(values), max(values)


def _count(value: object, name: str, *, low: int = 0) -> int:
    return check_int(value, name, low=low)


def _step(step: object) -> int:
    return check_int(step, "step", low=0)


@dataclasses.dataclass(frozen=True)
class Constant:
    """``value`` at every step."""

    value: float

    def __post_init__(self) -> None:
        check_real(self.value, "value")

    def __call__(self, step: int) -> float:
        _step(step)
        return float(self.value)

    def _span(self) -> tuple[float, float]:
        return _hull(self.value)


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
        return min(max((_step(step) - self.begin) / self.steps, 0.0), 1.0)

    def _span(self) -> tuple[float, float]:
        return _hull(self.start, self.end)


@dataclasses.dataclass(frozen=True)
class Linear(_Ramp):
    """From ``start`` to ``end`` linearly over ``steps`` steps after ``begin``; constant outside.

    v(t) = start + (end − start) · clamp((t − begin) / steps, 0, 1)
    """

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * self._progress(step)


@dataclasses.dataclass(frozen=True)
class Cosine(_Ramp):
    """Half-cosine from ``start`` to ``end`` over ``steps`` steps after ``begin``.

    v(t) = end + (start − end) · (1 + cos(π · clamp((t − begin) / steps, 0, 1))) / 2
    """

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * self._progress(step))) / 2.0


@dataclasses.dataclass(frozen=True)
class ExponentialDecay:
    """v(t) = init · rate^(t / decay_steps), or rate^⌊t / decay_steps⌋ with ``staircase=True``."""

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
        power = _step(step) / self.decay_steps
        return self.init * self.rate ** (math.floor(power) if self.staircase else power)

    def _span(self) -> tuple[float, float]:
        return _hull(self.init) if self.rate == 1 else _hull(self.init, 0.0)


@dataclasses.dataclass(frozen=True)
class Annealed:
    """The annealed gradient-noise std of Neelakantan et al. 2015: σ_t = √(η / (1 + t)^γ).

    The paper states the *variance* σ_t² = η / (1 + t)^γ with η ∈ {0.01, 0.3, 1.0} and γ = 0.55; this
    schedule returns its square root, the standard deviation, like every other noise strength.
    """

    eta: float
    gamma: float = 0.55

    def __post_init__(self) -> None:
        check_real(self.eta, "eta", low=0.0)
        check_real(self.gamma, "gamma", low=0.0)

    def __call__(self, step: int) -> float:
        return math.sqrt(self.eta / (1.0 + _step(step)) ** self.gamma)

    def _span(self) -> tuple[float, float]:
        return _hull(math.sqrt(self.eta), 0.0 if self.gamma > 0 else math.sqrt(self.eta))


@dataclasses.dataclass(frozen=True)
class Piecewise:
    """``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]`` (step function).

    ``len(values) == len(boundaries) + 1``; boundaries strictly increasing.
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
                f"values must have len(boundaries) + 1 = {len(self.boundaries) + 1} entries, "
                f"got {len(self.values)}"
            )

    def __call__(self, step: int) -> float:
        t = _step(step)
        return float(self.values[sum(1 for b in self.boundaries if t >= b)])

    def _span(self) -> tuple[float, float]:
        return _hull(*self.values)


@dataclasses.dataclass(frozen=True)
class Interval:
    """Noise at scheduled intervals: ``value`` for ``on`` steps, then ``off_value`` for ``off`` steps, repeating.

    v(t) = value if (t − offset) mod (on + off) < on else off_value (and off_value before ``offset``).
    Wrap with :func:`per_epoch` to count in epochs ("on for k epochs, off for m").
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
        t = _step(step) - self.offset
        if t < 0:
            return float(self.off_value)
        return float(self.value if t % (self.on + self.off) < self.on else self.off_value)

    def _span(self) -> tuple[float, float]:
        return _hull(self.value, self.off_value)


@dataclasses.dataclass(frozen=True)
class WarmUp:
    """No noise for ``delay`` steps, then a linear ramp to ``value`` over ``ramp`` steps (curriculum).

    v(t) = value · clamp((t − delay) / ramp, 0, 1); with ``ramp=0`` the noise switches on at ``delay``.
    """

    value: float
    delay: int
    ramp: int = 0

    def __post_init__(self) -> None:
        check_real(self.value, "value")
        check_int(self.delay, "delay", low=0)
        check_int(self.ramp, "ramp", low=0)

    def __call__(self, step: int) -> float:
        t = _step(step) - self.delay
        if t < 0:
            return 0.0
        return float(self.value) if self.ramp == 0 else self.value * min(t / self.ramp, 1.0)

    def _span(self) -> tuple[float, float]:
        return _hull(0.0, self.value)


def _check_schedule(value: object, name: str) -> None:
    if not callable(value):
        raise TypeError(f"{name}={value!r} must be a schedule: a function of the step")


@dataclasses.dataclass(frozen=True)
class Product:
    """v(t) = Π_i schedules[i](t); e.g. ``Product((Interval(1.0, 5, 5), Annealed(0.3)))``."""

    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        if not self.schedules:
            raise ValueError("schedules must not be empty")
        for i, s in enumerate(self.schedules):
            _check_schedule(s, f"schedules[{i}]")

    def __call__(self, step: int) -> float:
        return math.prod(s(step) for s in self.schedules)

    def _span(self) -> tuple[float, float] | None:
        low, high = 1.0, 1.0
        for schedule in self.schedules:
            ends = span(schedule)
            if ends is None:
                return None
            low, high = _hull(*(a * b for a in (low, high) for b in ends))
        return low, high


@dataclasses.dataclass(frozen=True)
class Sequence:
    """``schedules[i]`` from ``boundaries[i-1]`` on, each seeing its own step count from 0."""

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", tuple(self.schedules))
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        for i, s in enumerate(self.schedules):
            _check_schedule(s, f"schedules[{i}]")
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
        t = _step(step)
        i = sum(1 for b in self.boundaries if t >= b)
        start = self.boundaries[i - 1] if i else 0
        return self.schedules[i](t - start)

    def _span(self) -> tuple[float, float] | None:
        ends = [span(s) for s in self.schedules]
        known = [e for e in ends if e is not None]
        if len(known) < len(ends):
            return None
        return _hull(*(v for e in known for v in e))


@dataclasses.dataclass(frozen=True)
class _PerEpoch:
    schedule: Schedule
    steps_per_epoch: int

    def __call__(self, step: int) -> float:
        return self.schedule(_step(step) // self.steps_per_epoch)

    def _span(self) -> tuple[float, float] | None:
        return span(self.schedule)


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


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Evaluate ``schedule`` at the epoch ``step // steps_per_epoch`` instead of at the step."""
    _check_schedule(schedule, "schedule")
    check_int(steps_per_epoch, "steps_per_epoch", low=1)
    return _PerEpoch(schedule, int(steps_per_epoch))


class Clock:
    """The step counter that resolves a model's schedules.

    ``auto=True`` (the default) lets :func:`noisereg.layers.bind_clock` advance it by one on every
    training-mode forward of the model it is bound to; with ``auto=False`` only ``tick()`` or setting
    ``step`` moves it.
    """

    def __init__(self, step: int = 0, *, auto: bool = True) -> None:
        self.step = step
        self.auto = bool(auto)

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = check_int(value, "step", low=0)

    def tick(self, n: int = 1) -> int:
        self._step += check_int(n, "n", low=0)
        return self._step

    def state_dict(self) -> dict[str, int]:
        """``{"step": step}``, for a checkpoint (a bound model's layers also carry it)."""
        return {"step": self._step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Set the step saved by :meth:`state_dict`."""
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"clock state must be a dict with a 'step' (from Clock.state_dict()), got {state!r}")
        self.step = state["step"]

    def __repr__(self) -> str:
        return f"Clock(step={self._step}, auto={self.auto})"

