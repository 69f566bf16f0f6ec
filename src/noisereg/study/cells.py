"""Cells of a study (arm × grid value) and how they map to replicas and engine groups.

Torch-free: the plan is plain data, so that the store's metadata and the report can use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from noisereg.noise.kinds import KINDS
from noisereg.study.config import StudyConfig

__all__ = ["Cell", "plan_cells", "cell_key", "signature", "TrainingError"]


class TrainingError(RuntimeError):
    """Training some cells failed: ``cells`` names them; each is stored as FAIL with the traceback
    (``__cause__`` holds the original error)."""

    def __init__(self, message: str, cells: list[str]) -> None:
        super().__init__(message)
        self.cells = cells


@dataclasses.dataclass(frozen=True)
class Cell:
    """One arm at one grid value. ``selection``: this cell's arm is chosen by cross-validation, so
    it also trains on the CV folds. ``search``: one trial of the arm's ``search``; until the sampler
    proposes its value (:mod:`noisereg.study.run.search`), ``value`` is None and ``noise`` is the arm's.
    ``standardize`` and ``weight_decay``: the arm's overrides of the study's (None: the study's).
    ``seeds``: a round of a sequential study trains seed indices range(*seeds) of the cell ``of``
    (:mod:`noisereg.study.rounds`); None: every seed."""

    key: str
    arm: str
    value: float | None
    param: str | None
    noise: tuple[Any, ...]
    selection: bool
    search: bool = False
    standardize: bool | None = None
    weight_decay: float | None = None
    seeds: tuple[int, int] | None = None
    of: str | None = None
    sam_rho: float | None = None

    def meta(self) -> dict[str, Any]:
        """Plain data stored with the study (no noise objects)."""
        return {
            "arm": self.arm,
            "value": self.value,
            "param": self.param,
            "selection": self.selection,
            "noise": [n.model_dump(mode="json") for n in self.noise],
            **({"search": True} if self.search else {}),
            **({"standardize": self.standardize} if self.standardize is not None else {}),
            **({"weight_decay": self.weight_decay} if self.weight_decay is not None else {}),
            **({"seeds": list(self.seeds), "of": self.of} if self.seeds is not None else {}),
            **({"sam_rho": self.sam_rho} if self.sam_rho is not None else {}),
        }


def cell_key(arm: str, value: float | None, param: str | None = None) -> str:
    """``arm`` for a plain arm, ``arm[param=value]`` for a grid cell (``repr`` keeps floats exact)."""
    if value is None:
        return arm
    return f"{arm}[{param or 'value'}={value!r}]"


def plan_cells(config: StudyConfig) -> list[Cell]:
    """Every cell of the study in file order."""
    chosen = config.selection.arm if config.selection is not None else None
    cells = []
    for arm in config.arms:
        if arm.search is not None:
            param: str | None = arm.search.param or KINDS[arm.noise[0].kind].strength
            for i in range(1, arm.search.trials + 1):
                cells.append(
                    Cell(
                        cell_key(arm.name, i, "trial"),
                        arm.name,
                        None,
                        param,
                        tuple(arm.noise),
                        True,
                        search=True,
                        standardize=arm.standardize,
                        weight_decay=arm.weight_decay,
                        sam_rho=arm.sam_rho,
                    )
                )
            continue
        param = None if arm.grid is None else (arm.grid.param or KINDS[arm.noise[0].kind].strength)
        for value, noise in arm.cells():
            cells.append(
                Cell(
                    cell_key(arm.name, value, param),
                    arm.name,
                    value,
                    param,
                    tuple(noise),
                    arm.name == chosen,
                    standardize=arm.standardize,
                    weight_decay=arm.weight_decay,
                    sam_rho=arm.sam_rho,
                )
            )
    return cells


def _main_float(table: Any) -> float | None:
    value = getattr(table, KINDS[table.kind].strength)
    return None if hasattr(value, "schedule") else float(value)


def signature(cell: Cell) -> tuple[Any, ...]:
    """Cells with equal signatures differ only in float main strengths and train as one group,
    each replica carrying its cell's strengths. A scheduled strength is part of the signature; a
    search cell has a signature of its own (the sampler proposes one cell at a time); cells of
    different weight decay or SAM radius train with different optimizers, so never together."""
    if cell.search:
        return ("search", cell.key)
    parts: list[Any] = [("weight_decay", cell.weight_decay)]
    if cell.sam_rho is not None:
        parts.append(("sam_rho", cell.sam_rho))
    for table in cell.noise:
        dump = table.model_dump(mode="json")
        if _main_float(table) is not None:
            dump[KINDS[table.kind].strength] = None
        parts.append(repr(sorted(dump.items())))
    return tuple(parts)


def strengths(cell: Cell) -> tuple[float, ...]:
    """Per-site main strengths of ``cell`` ( () when any of them is a schedule)."""
    values = [_main_float(t) for t in cell.noise]
    return () if any(v is None for v in values) else tuple(values)  # type: ignore[arg-type]
