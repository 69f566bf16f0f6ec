"""A study checked against its data, the engine and its robustness settings, before anything is stored.

:func:`prepare` loads the data, makes the folds, builds the model, loss and optimizer specs and every
cell's noise, and raises on the first problem: nothing has been trained or stored when it returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from noisereg.engine import FoldData, Group, Replica
from noisereg.seeding import derive_seed
from noisereg.study.bridge.models import loss_for, model_spec, optimizer_spec
from noisereg.study.bridge.resources import check_device, check_generated_size, check_replica_fits
from noisereg.study.bridge.robustness import (
    check_robustness,
    monitor_meta,
    monitor_noise,
)
from noisereg.study.bridge.sites import site_noise
from noisereg.study.cells import Cell, plan_cells, signature, strengths
from noisereg.study.config import StudyConfig, StudyConfigError
from noisereg.study.data import Dataset, Fold, load_dataset, make_folds
from noisereg.study.rounds import plan_rounds

__all__ = ["Prepared", "prepare", "fold_data", "thin_indices"]


class Prepared:
    """A study checked against its data and the engine, ready to run; nothing stored yet."""

    def __init__(self, config: StudyConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = check_device(device)
        check_generated_size(config.data, f"study {config.name!r}")
        self.data: Dataset = load_dataset(config.data)
        cv = config.selection.folds if config.selection is not None else None
        nested = config.selection is not None and config.selection.nested
        self.folds: list[Fold] = make_folds(
            self.data, config.split, config.data, cv_folds=cv, validation=config.training.validation, nested=nested
        )
        self.fold_scaling = [config.data.standardize] * len(self.folds)
        for flag in sorted(
            {a.standardize for a in config.arms if a.standardize is not None} - {config.data.standardize}
        ):
            rescaled = config.data.model_copy(update={"standardize": flag})
            extra = make_folds(self.data, config.split, rescaled, validation=config.training.validation)
            self.folds += extra
            self.fold_scaling += [flag] * len(extra)
        check_robustness(config, self.data, self.folds)
        self.eval_noise = monitor_noise(config.robustness)
        self.loss = loss_for(config, self.data)
        self.model = model_spec(config, self.data)
        self.optimizer = optimizer_spec(config)
        self.cells: list[Cell] = plan_rounds(config, plan_cells(config))
        self.by_key = {c.key: c for c in self.cells}
        for cell in self.cells:  # every site must build before any training
            for table in cell.noise:
                site_noise(table)
        self.seeds = [derive_seed(config.seed, "seed", i) for i in range(config.max_seeds)]
        self._check_groups()

    def group_options(self, cell: Cell) -> dict[str, Any]:
        """The engine :class:`~noisereg.engine.Group` arguments of ``cell`` but its sites and replicas:
        the study's, with the cell's ``weight_decay`` in the optimizer."""
        training = self.config.training
        optimizer = self.optimizer
        if cell.weight_decay is not None:
            optimizer = dataclasses.replace(optimizer, weight_decay=cell.weight_decay)
        if cell.sam_rho is not None:
            optimizer = dataclasses.replace(optimizer, sam_rho=cell.sam_rho)
        return {
            "model": self.model,
            "optimizer": optimizer,
            "loss": self.loss,
            "epochs": training.epochs,
            "batch_size": training.batch_size,
            "eval_every": training.eval_every,
            "patience": training.patience,
            "eval_noise": self.eval_noise,
        }

    def _check_groups(self) -> None:
        """Build one engine group per kind of cell, so the engine's own checks run now, and refuse a
        study of which one replica cannot fit in memory."""
        groups = []
        for cell in {signature(c): c for c in self.cells}.values():
            sites = tuple(site_noise(t) for t in cell.noise)
            try:
                groups.append(
                    Group(
                        sites=sites, replicas=(Replica(self.seeds[0], 0, strengths(cell)),), **self.group_options(cell)
                    )
                )
            except (TypeError, ValueError) as exc:
                raise StudyConfigError(
                    [(f"arms ({cell.key})", f"the engine refuses this cell: {exc}")], f"study {self.config.name!r}"
                ) from None
        folds = [fold_data(f, self.loss, torch.float32) for f in self.folds]
        model = self.config.model
        key, value = ("model.widths", list(model.widths)) if model.family == "mlp" else ("model", model.family)
        check_replica_fits(groups, folds, self.device, key, value, f"study {self.config.name!r}")

    def folds_of(self, cell: Cell) -> list[int]:
        """The folds ``cell`` trains on: the test folds of its scaling (``arms[].standardize``, else
        ``data.standardize``); the CV (and nested) folds too for a selection cell; and the nested test
        folds for the baseline cell of a nested selection."""
        scaling = self.config.data.standardize if cell.standardize is None else cell.standardize
        roles = {"test"}
        if cell.selection:
            roles |= {"cv", "nested_test", "nested_cv"}
        elif cell.arm == self.config.baseline_arm and cell.value is None:
            roles.add("nested_test")
        return [i for i, f in enumerate(self.folds) if self.fold_scaling[i] == scaling and f.role in roles]

    def seeds_on(self, fold: int, cell: Cell | None = None) -> range:
        """Seed indices that train on ``fold``: all on test folds, ``selection.seeds`` on CV and nested folds;
        a round's seeds for a ``cell`` of a sequential study."""
        sel = self.config.selection
        stop = len(self.seeds)
        if self.folds[fold].role != "test" and sel is not None and sel.seeds is not None:
            stop = sel.seeds
        if cell is not None and cell.seeds is not None:
            return range(min(cell.seeds[0], stop), min(cell.seeds[1], stop))
        return range(stop)

    def replicas(self, cell: Cell) -> int:
        return sum(len(self.seeds_on(g, cell)) for g in self.folds_of(cell))

    def units(self, cell: Cell) -> int:
        return self.replicas(cell) * self.config.training.epochs

    def meta(self) -> dict[str, Any]:
        test = [
            f
            for f, s in zip(self.folds, self.fold_scaling, strict=True)
            if f.role == "test" and s == self.config.data.standardize
        ]
        return {
            "data": self.data.name,
            "task": self.data.task,
            "classes": list(self.data.classes),
            "features": int(self.data.x.shape[1]),
            "n_train": [int(len(f.y_train)) for f in test],
            "n_test": [int(len(f.y_test)) for f in test],
            "loss": self.loss,
            "seeds": len(self.seeds),
            "monitor": monitor_meta(self.config.robustness),
        }


def prepare(config: StudyConfig, *, device: str = "cpu") -> Prepared:
    """Load and check the data, folds, model and every cell's noise, and that the study can train on
    ``device`` (it exists, one replica fits in its memory); raise before any work."""
    return Prepared(config, device)


def fold_data(fold: Fold, loss: str, dtype: torch.dtype) -> FoldData:
    """A study fold's numpy arrays as the engine's tensors (class codes as int64 for ``ce``)."""

    def y(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(v, dtype=torch.long) if loss == "ce" else torch.as_tensor(v, dtype=dtype)

    def x(v: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(v, dtype=dtype)

    x_val = None if fold.x_val is None else x(fold.x_val)
    y_val = None if fold.y_val is None else y(fold.y_val)
    return FoldData(x(fold.x_train), y(fold.y_train), x(fold.x_test), y(fold.y_test), x_val, y_val)


def thin_indices(length: int, points: int) -> np.ndarray:
    """At most ``points`` indices evenly spread over ``range(length)``, first and last included."""
    if length <= points:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, points)).astype(int))
