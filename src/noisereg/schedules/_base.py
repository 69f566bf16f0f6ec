"""The contract every schedule keeps, the one place a strength is resolved, and the clock."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from noisereg._checks import check_int

__all__ = ["Schedule", "resolve", "span", "Clock", "hull", "check_step", "check_schedule"]


@runtime_checkable
class Schedule(Protocol):
    """A pure function of the step: ``schedule(step) -> float``.

    Any callable of the step is one; the built-in schedules are frozen dataclasses that also know
    their range (:func:`span`).

    Args:
        step: the 0-based training step, an int >= 0 (the built-in schedules raise ``TypeError`` or
            ``ValueError`` naming ``step`` for anything else).

    >>> isinstance(lambda step: 0.1, Schedule)
    True
    """

    def __call__(self, step: int) -> float: ...


def resolve(strength: object, step: int) -> object:
    """The value of ``strength`` at ``step``: schedules (any callable of the step) are evaluated,
    numbers and tensors are returned as they are.

    Args:
        strength: a number, a tensor or a schedule.
        step: the 0-based training step.

    Returns:
        ``strength(step)`` for a callable, else ``strength`` itself.

    Raises:
        TypeError, ValueError: from a built-in schedule when ``step`` is not an int >= 0; any other
            callable's own exception propagates unchanged.

    >>> resolve(0.1, 7), resolve(lambda step: 0.1 * step, 3)
    (0.1, 0.30000000000000004)
    """
    if callable(strength):
        return strength(step)
    return strength


def span(schedule: object) -> tuple[float, float] | None:
    """The smallest closed interval [low, high] that holds every value of a built-in ``schedule``;
    None for any other callable, whose values cannot be known before it is called.

    Decays (:class:`ExponentialDecay`, :class:`Annealed`) approach 0 without reaching it; their
    interval includes 0. Configs use this to refuse, when they are made, a schedule that would leave
    a strength's range at some step.

    Args:
        schedule: any object.

    Returns:
        ``(low, high)``, or None when the range cannot be known.

    >>> from noisereg.schedules import Linear
    >>> span(Linear(1.0, -1.0, steps=10))
    (-1.0, 1.0)
    >>> span(lambda step: 0.1) is None
    True
    """
    ends = getattr(schedule, "_span", None)
    return ends() if callable(ends) else None


def hull(*values: float) -> tuple[float, float]:
    """The closed interval [min, max] of ``values`` (a schedule's span)."""
    return min(values), max(values)


def check_step(step: object) -> int:
    """``step`` as an int >= 0; raises TypeError/ValueError naming ``step`` otherwise."""
    return check_int(step, "step", low=0)


def check_schedule(value: object, name: str) -> None:
    """Raise TypeError naming ``name`` unless ``value`` is callable (a function of the step)."""
    if not callable(value):
        raise TypeError(f"{name}={value!r} must be a schedule: a function of the step")


class Clock:
    """The step counter that resolves a model's schedules.

    ``auto=True`` (the default) lets :func:`noisereg.layers.bind_clock` advance it by one on every
    training-mode forward of the model it is bound to; with ``auto=False`` only ``tick()`` or setting
    ``step`` moves it.

    Args:
        step: the starting step, an int >= 0.
        auto: whether a bound model advances it.

    Raises:
        TypeError, ValueError: ``step`` (or ``tick``'s ``n``) is not an int >= 0.

    >>> clock = Clock(auto=False)
    >>> clock.tick(3)
    3
    >>> clock.state_dict()
    {'step': 3}
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
