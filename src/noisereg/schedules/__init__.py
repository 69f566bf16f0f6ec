"""Noise strength as a pure function of the training step, and the clock that supplies the step.

Every strength in noisereg is a number or a :class:`Schedule`. A schedule is a frozen dataclass whose
``__call__(step)`` returns the strength at that (0-based) step; it holds no state, so the same step
always gives the same value. :func:`resolve` is the one place where a strength is turned into a number.
Schedules written in epochs are wrapped with :func:`per_epoch`, which maps a step to its epoch.

A :class:`Clock` counts steps. ``noisereg.layers.bind_clock(model)`` gives a model one clock that
advances by one on each training-mode forward of the model; a clock made with ``auto=False`` is
driven by the user (``clock.tick()`` or ``clock.step = n``).
"""

from noisereg.schedules._base import Clock, Schedule, resolve, span
from noisereg.schedules._compose import Product, Sequence, per_epoch
from noisereg.schedules._shapes import (
    NAMED,
    Annealed,
    Constant,
    Cosine,
    ExponentialDecay,
    Interval,
    Linear,
    Piecewise,
    WarmUp,
)

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
