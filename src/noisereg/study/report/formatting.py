"""How numbers read in the report's tables (summary.md, report.html and the terminal): no torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Table", "bracket", "fmt", "pm"]

#: (title, note, headers, rows of display strings) of one table.
Table = tuple[str, str, list[str], list[list[str]]]


def fmt(value: Any, digits: int = 4) -> str:
    """A number for tables: ``digits`` significant digits, '—' for None."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.{digits}g}"
    return str(value)


def pm(stats: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not stats:
        return "—"
    return (
        f"{fmt(stats['mean'], digits)} ± {fmt(stats['std'], 2)}"
        if stats.get("std") is not None
        else fmt(stats["mean"], digits)
    )


def bracket(ci: Sequence[float | None] | None, digits: int = 3) -> str:
    return "—" if not ci or ci[0] is None else f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"
