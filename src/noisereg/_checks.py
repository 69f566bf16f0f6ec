"""The one rule for argument errors in noisereg, in one place.

- ``TypeError`` when the argument has the wrong type: a str, a bool or None where a number goes, a
  float where an int goes.
- ``ValueError`` when it has the right type and a wrong value. NaN and infinity are values: a float
  that is NaN or infinite where a finite number goes raises ``ValueError``.
- The message names the argument, repeats the value received and says what was expected:
  ``std=-1.0 must be >= 0``.

Every public entry point checks its numbers with :func:`check_real` and :func:`check_int` (through
the thin helpers built on them: :func:`noisereg.noise.base.check_strength`,
:func:`noisereg.seeding.check_seed`), so that the same mistake reads the same everywhere. Nothing
here imports torch.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_real", "check_int", "expected_range", "SEED_MAX", "NUMPY_SEED_MAX"]

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
