"""The trained weights of a study, one file per cell, loadable with ``torch.load(..., weights_only=True)``.

A run directory holds ``models/<cell>.pt`` for every completed cell (the cell key made file-safe, plus
a short hash of the exact key). Each file is a plain dict that torch's safe loader reads without
running any pickled code::

    {"format": "noisereg.models/1", "cell": "<cell key>", "model": "<the study's [model] table, JSON>",
     "seeds": [seed index, ...], "folds": [fold index, ...],
     "state": {parameter name: tensor [R, *shape]}}

Replica r trained seed index ``seeds[r]`` on test fold ``folds[r]`` (the study's folds with role
``test``; cross-validation folds are not kept); ``{name: t[r] for name, t in state.items()}`` is its
state dict, for the engine's MLP (:func:`noisereg.engine.build_module`) or the study's CNN / GRU /
LSTM module. Files are written to a temporary name and renamed, so a file is either whole or absent
(a failed write raises :class:`~noisereg.study.rundir.RunDirError` naming the file), and they are written before the cell's results are committed to the store: a COMPLETE cell has its
models, and a cell trained again after a crash rewrites the same file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from noisereg._checks import check_int
from noisereg.study.rundir import write_file

__all__ = ["FORMAT", "CellModels", "model_path", "save_cell_models", "load_cell_models"]

FORMAT = "noisereg.models/1"


@dataclass(frozen=True)
class CellModels:
    """The replicas of one cell: ``state[name][r]`` belongs to seed index ``seeds[r]``, fold ``folds[r]``."""

    cell: str
    model: str
    seeds: tuple[int, ...]
    folds: tuple[int, ...]
    state: dict[str, Tensor]

    def state_dict(self, r: int) -> dict[str, Tensor]:
        """Replica ``r``'s state dict."""
        check_int(r, "r", low=0, high=len(self.seeds) - 1)
        return {name: t[r] for name, t in self.state.items()}


def model_path(models_dir: str | Path, cell: str) -> Path:
    """``<models_dir>/<file-safe cell key>-<8 hex digits of its SHA-256>.pt``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", cell).strip("_.")[:60] or "cell"
    digest = hashlib.sha256(cell.encode()).hexdigest()[:8]
    return Path(models_dir) / f"{safe}-{digest}.pt"


def save_cell_models(
    models_dir: str | Path,
    cell: str,
    model: str,
    seeds: Sequence[int],
    folds: Sequence[int],
    state: Mapping[str, Tensor],
) -> Path:
    """Write one cell's stacked weights (``state[name]`` is [R, ...] for the R replicas) atomically.

    Raises:
        ValueError: seeds, folds and weights disagree. RunDirError: the file could not be written.
    """
    count = len(seeds)
    if len(folds) != count or not state or any(t.shape[0] != count for t in state.values()):
        shapes = {k: tuple(t.shape) for k, t in state.items()}
        raise ValueError(f"cell {cell!r}: {count} seeds, {len(folds)} folds and stacked weights {shapes} must agree")
    path = model_path(models_dir, cell)
    payload = {
        "format": FORMAT,
        "cell": cell,
        "model": model,
        "seeds": [int(s) for s in seeds],
        "folds": [int(f) for f in folds],
        "state": {k: t.detach().cpu().contiguous() for k, t in state.items()},
    }
    # into an open file, not a path: torch's own file writer reports a full disk as a bare RuntimeError
    return write_file(path, lambda f: torch.save(payload, f))


def load_cell_models(models_dir: str | Path, cell: str) -> CellModels:
    """Read one cell's file with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no file for ``cell``. ValueError: a file of another format or cell.
    """
    path = model_path(models_dir, cell)
    if not path.is_file():
        raise FileNotFoundError(f"no stored models for cell {cell!r}: {path} does not exist")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("cell") != cell:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a {FORMAT} file of cell {cell!r} (format {found!r})")
    return CellModels(cell, data["model"], tuple(data["seeds"]), tuple(data["folds"]), dict(data["state"]))
