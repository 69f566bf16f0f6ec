"""Checks of plain numbers that every layer shares: a finite number, a count.

Both raise at the public boundary with the argument's name and value and what was expected.

>>> check_count(3, "n", low=1)
3
>>> check_number(0.5, "beta", low=0.0)
0.5
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_count"]


def check_number(value: object, name: str, *, low: float = -math.inf) -> float:
    """``value`` as a float: a finite real number >= ``low``.

    Raises:
        TypeError: for a bool, a non-number or a non-finite number.
        ValueError: below ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name}={value!r} must be a finite number")
    number = float(value)
    if number < low:
        raise ValueError(f"{name}={value!r} must be >= {low}")
    return number


def check_count(value: object, name: str, low: int = 0) -> int:
    """``value`` as an int: an integer (not a bool) >= ``low``.

    Raises:
        ValueError: for anything else, naming ``name``, the value and ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ValueError(f"{name}={value!r} must be an int >= {low}")
    return int(value)
