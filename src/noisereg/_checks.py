"""The one rule for argument errors in noisereg, in one place.

- ``TypeError`` when the argument has the wrong type: a str, a bool or None where a number goes, a
  float where an int goes.
- ``ValueError`` when it has the right type and a wrong value. NaN and infinity are values: a float
  that is NaN or infinite where a finite number goes raises ``ValueError``.
- The message names the argument, repeats the value received and says what was expected:
  ``std=-1.0 must be >= 0``.

Every public entry point checks its numbers with :func:`check_real` and :func:`check_int` (through
the thin helpers built on them: :func:`noisereg.noise.base.check_strength`,
:func:`noisereg.seeding.check_seed`), its options with :func:`check_choice` and its functions and
objects with :func:`check_callable` and :func:`check_type`, so that the same mistake reads the same
everywhere. An entry point whose arguments come from a file marks its errors with :func:`about`, so
that the file's reader can name the file's key instead of the argument. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import warnings
from collections.abc import Iterator

__all__ = [
    "check_real",
    "check_int",
    "check_choice",
    "check_callable",
    "check_type",
    "about",
    "warn_deprecated",
    "expected_range",
    "SEED_MAX",
    "NUMPY_SEED_MAX",
]

SEED_MAX = 2**64 - 1
"""The largest seed: ``torch.Generator.manual_seed`` takes 64 bits."""
NUMPY_SEED_MAX = 2**32 - 1
"""The largest ``random_state`` scikit-learn passes to numpy's legacy ``RandomState``."""


def expected_range(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> str:
    """The words that follow "must be" for numbers in the given range, e.g. ``">= 0 and < 1"``."""
    parts = []
    if low != -math.inf:
        parts.append(f"{'>' if low_open else '>='} {_show(low)}")
    if high != math.inf:
        parts.append(f"{'<' if high_open else '<='} {_show(high)}")
    if not parts:
        return "a number (inf allowed)" if allow_inf else "a finite number"
    return ("" if allow_inf else "finite and ") + " and ".join(parts) + (" (inf allowed)" if allow_inf else "")


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 2**53 else repr(bound)


def check_real(
    value: object,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float, or an error that names ``name``.

    Raises:
        TypeError: ``value`` is not a real number (bools, strings, None, tensors are not).
        ValueError: NaN; ±inf (``allow_inf`` admits +inf only); outside [low, high] (open ends with
            ``low_open`` / ``high_open``).

    >>> check_real(0.5, "std", low=0.0)
    0.5
    >>> check_real(-1.0, "std", low=0.0)
    Traceback (most recent call last):
    ...
    ValueError: std=-1.0 must be finite and >= 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}")
    number = float(value)
    expected = expected_range(low, high, low_open=low_open, high_open=high_open, allow_inf=allow_inf)
    ok = not math.isnan(number) and (math.isfinite(number) or (allow_inf and number == math.inf))
    ok = ok and (number > low if low_open else number >= low) and (number < high if high_open else number <= high)
    if not ok:
        raise ValueError(f"{name}={value!r} must be {expected}")
    return number


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or an error that names ``name``.

    Raises:
        TypeError: ``value`` is not an integer (bools and floats such as ``3.0`` are not).
        ValueError: outside [low, high].

    >>> check_int(3, "epochs", low=1)
    3
    >>> check_int(2**64, "seed", low=0, high=2**64 - 1)
    Traceback (most recent call last):
    ...
    ValueError: seed=18446744073709551616 must be an int >= 0 and <= 18446744073709551615
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} must be an int, got {type(value).__name__}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = [f">= {low}"] * (low is not None) + [f"<= {high}"] * (high is not None)
        raise ValueError(f"{name}={value!r} must be an int {' and '.join(bounds)}")
    return number


def check_choice(value: object, name: str, choices: tuple[object, ...]) -> None:
    """Refuse a ``value`` that is not one of ``choices``: TypeError for another type, else ValueError.

    >>> check_choice("sgd", "optimizer", ("adam", "sgd"))
    >>> check_choice("bfgs", "optimizer", ("adam", "sgd"))
    Traceback (most recent call last):
    ...
    ValueError: optimizer='bfgs' must be one of 'adam', 'sgd'
    """
    if value in choices and not (isinstance(value, bool) and not any(isinstance(c, bool) for c in choices)):
        return
    listed = ", ".join(repr(c) for c in choices)
    if not any(type(value) is type(c) for c in choices):
        raise TypeError(f"{name}={value!r} must be one of {listed}, got {type(value).__name__}")
    raise ValueError(f"{name}={value!r} must be one of {listed}")


def check_callable(value: object, name: str, expected: str, *, optional: bool = False) -> None:
    """Refuse a ``value`` that cannot be called (None too, unless ``optional``); ``expected`` says
    what it is called with and returns, e.g. ``"a function params -> torch.optim.Optimizer"``.

    >>> check_callable("adam", "optimizer", "a function params -> torch.optim.Optimizer")
    Traceback (most recent call last):
    ...
    TypeError: optimizer='adam' must be a function params -> torch.optim.Optimizer, got str
    """
    if value is None and optional:
        return
    if not callable(value):
        none = " or None" if optional else ""
        raise TypeError(f"{name}={value!r} must be {expected}{none}, got {type(value).__name__}")


def check_type(value: object, name: str, types: type | tuple[type, ...], expected: str) -> None:
    """Refuse a ``value`` that is no instance of ``types`` (a bool is no int); ``expected`` names
    what goes there, e.g. ``"a torch.dtype such as torch.float64"``.

    >>> check_type("x", "name", str, "a str")
    >>> check_type(3, "name", str, "a str")
    Traceback (most recent call last):
    ...
    TypeError: name=3 must be a str, got int
    """
    wanted = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in wanted and int in wanted):
        raise TypeError(f"{name}={value!r} must be {expected}, got {type(value).__name__}")


@contextlib.contextmanager
def about(*path: str | int) -> Iterator[None]:
    """Mark a TypeError/ValueError raised inside as being about the argument ``path`` (its name, then
    keys or indices into it: ``("arms", "noisy", 0)``), unless an inner ``about`` marked it already.

    The mark is the exception's ``argument`` attribute; the error itself is unchanged, so a Python
    caller sees the argument's own message, while a caller that built the arguments from a file maps
    ``argument`` to the file's key path.
    """
    try:
        yield
    except (TypeError, ValueError) as exc:
        if getattr(exc, "argument", None) is None:
            setattr(exc, "argument", path)  # noqa: B010  # exceptions take attributes; read back with getattr
        raise


def warn_deprecated(message: str) -> None:
    """A ``DeprecationWarning`` of ``message`` (which says what was written, where, and what to write
    instead), attributed to the first caller outside noisereg, so that Python's default filters show it
    to a script that wrote the old spelling (``warnings.warn(skip_file_prefixes=...)`` does this from
    Python 3.12)."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and str(frame.f_globals.get("__name__", "")).partition(".")[0] == "noisereg":
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level + 1)
