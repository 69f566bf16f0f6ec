"""The plan of a study of the user's own model, and the checks of :func:`~noisereg.study.api.run_model`'s
arguments that run before any work: its cells (one per arm and grid value) from the arms and grid, the
options, functions and places it was given, every site attached once to one model, and the model's
forward and loss on two samples. Each error is marked with :func:`~noisereg._checks.about` as being
about the argument it names, so that a study file reports it under its key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch

from noisereg._checks import about, check_callable, check_choice, check_int, check_real, check_type
from noisereg.engine.loop import AttachSite
from noisereg.seeding import check_seed
from noisereg.sites import attach
from noisereg.sites.attach import At
from noisereg.study.bridge.resources import check_device
from noisereg.study.cells import cell_key

__all__ = ["PlannedCell", "plan", "check_count", "check_settings", "check_arm_sites", "check_one_batch"]


@dataclasses.dataclass(frozen=True)
class PlannedCell:
    key: str
    arm: str
    value: float | None
    param: str | None
    sites: tuple[AttachSite, ...]

    def meta(self, path: str, why: str) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "value": self.value,
            "param": self.param,
            "selection": False,
            "noise": [s.describe() for s in self.sites],
            "path": path,
            "path_reason": why,
        }


def check_count(value: object, name: str, low: int, high: int | None = None) -> int:
    with about(name):
        return check_seed(value) if name == "seed" else check_int(value, name, low=low, high=high)


def check_settings(args: Mapping[str, Any]) -> None:
    """The arguments of :func:`run_model` that are options, functions or places, checked before any
    of them is used (a string where a function goes would fail only inside a training job)."""
    for name in ("vectorize", "save_models"):
        with about(name):
            check_type(args[name], name, bool, "True or False")
    with about("task"):
        check_choice(args["task"], "task", ("auto", "classification", "regression"))
    with about("metric"):
        check_choice(args["metric"], "metric", (None, "accuracy", "loss", "r2"))
    with about("loss"):
        if isinstance(args["loss"], str):
            check_choice(args["loss"], "loss", ("auto", "ce", "bce", "mse"))
        else:
            check_callable(args["loss"], "loss", "'auto', 'ce', 'bce', 'mse' or a function loss(outputs, targets)")
    shapes = {
        "optimizer": "a function params -> torch.optim.Optimizer (e.g. lambda p: torch.optim.SGD(p, lr=0.1))",
        "step": "a function step(model, batch, optimizer)",
        "fit": "a function fit(model, data, seed) -> dict of results",
        "collate": "a function collate(list of samples) -> batch",
    }
    for name, expected in shapes.items():
        with about(name):
            check_callable(args[name], name, expected, optional=True)
    if args["step"] is not None and args["fit"] is not None:
        with about("fit"):
            raise ValueError("give step= or fit=, not both: fit replaces the whole loop, step one batch of it")
    if args["clip_grad_norm"] is not None:
        with about("clip_grad_norm"):
            check_real(args["clip_grad_norm"], "clip_grad_norm", low=0.0, low_open=True)
            if args["fit"] is not None:
                raise ValueError(
                    f"clip_grad_norm={args['clip_grad_norm']!r} with fit=: fit is the whole loop, clip inside it"
                )
    places: dict[str, tuple[type | tuple[type, ...], str]] = {
        "out": ((str, Path), "a path (str or pathlib.Path) of the run directory"),
        "name": ((str, type(None)), "a str or None"),
        "description": (str, "a str"),
        "storage": ((str, type(None)), "an SQLAlchemy URL (str) or None"),
        "metrics": ((Mapping, type(None)), "a dict name -> fn(outputs, targets) -> float, or None"),
        "grid": ((Mapping, type(None)), "a dict arm name -> list of strengths, or None"),
        "study_file": ((Mapping, type(None)), "a dict (the validated study file) or None"),
        "dtype": (torch.dtype, "a floating torch.dtype such as torch.float32 or torch.float64"),
    }
    for name, (types, expected) in places.items():
        with about(name):
            check_type(args[name], name, types, expected)
    if not args["dtype"].is_floating_point:
        with about("dtype"):
            raise ValueError(f"dtype={args['dtype']!r} must be a floating dtype such as torch.float32")
    with about("device"):
        check_device(args["device"])


def plan(arms: Mapping[str, Sequence[AttachSite]], grid: Mapping[str, Any]) -> list[PlannedCell]:
    with about("arms"):
        return _arm_cells(arms, grid)


def _arm_cells(arms: Mapping[str, Sequence[AttachSite]], grid: Mapping[str, Any]) -> list[PlannedCell]:
    check_type(arms, "arms", Mapping, "a dict of arm name -> list of study.site(...)")
    if not arms:
        raise ValueError(f"arms={arms!r} must name at least one arm (one without noise: an empty list)")
    for name in grid:
        if name not in arms:
            with about("grid", name):
                raise ValueError(f"grid names arm {name!r}, which is not one of the arms {list(arms)}")
    cells = []
    for name, sites in arms.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"arm name {name!r} must be a non-empty str")
        if not isinstance(sites, (list, tuple)) or not all(isinstance(s, AttachSite) for s in sites):
            raise TypeError(f"arms[{name!r}] must be a list of study.site(...), got {sites!r}")
        if name not in grid:
            cells.append(PlannedCell(name, name, None, None, tuple(sites)))
            continue
        with about("grid", name):
            cells += _grid_arm_cells(name, sites, grid[name])
    return cells


def _grid_arm_cells(name: str, sites: Sequence[AttachSite], spec: Any) -> list[PlannedCell]:
    """The cells of arm ``name`` whose site's main strength takes the values of ``spec``."""
    cells = []
    index, values = (spec.get("site", 0), spec.get("values")) if isinstance(spec, Mapping) else (None, spec)
    if index is None:
        if len(sites) != 1:
            raise ValueError(
                f"grid[{name!r}]: arm {name!r} has {len(sites)} sites: give {{'site': i, 'values': [...]}}"
            )
        index = 0
    if not isinstance(index, int) or not 0 <= index < len(sites):
        raise ValueError(f"grid[{name!r}]['site']={index!r} must index one of the arm's {len(sites)} sites")
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"grid[{name!r}] must be a non-empty list of strengths, got {values!r}")
    param = sites[index].noise.strength_field if len(sites) == 1 else f"[{index}].{sites[index].noise.strength_field}"
    for value in values:
        changed = list(sites)
        changed[index] = sites[index].with_strength(value)
        cells.append(PlannedCell(cell_key(name, float(value), param), name, float(value), param, tuple(changed)))
    return cells


def check_arm_sites(
    factory: Callable[[], torch.nn.Module], cells: list[PlannedCell], fit: Any, step: Any
) -> torch.nn.Module:
    """Attach every arm's sites to one model and take them off: bad selectors fail before training.
    Returns the model (as the factory made it: removing a site restores it exactly).

    An error is marked with :func:`about` as being about ``("arms", arm, site index)``; its cause is
    attach's own message (which a study file reports under the site's key)."""
    with about("model"):
        model = factory()
    for cell in cells:
        for j, s in enumerate(cell.sites):
            with about("arms", cell.arm, j):
                if fit is not None and s.at in ("gradients", "targets"):
                    raise ValueError(
                        f"arms[{cell.arm!r}] site {j} at={s.at!r} needs noisereg's loop: with fit=, use input, activations, embeddings or weights noise"
                    )
                if s.at == "gradients":
                    continue
                try:
                    # site() accepted only attach's own sites
                    attach(model, s.noise, cast(At, s.at), seed=0, **dict(s.options)).remove()
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"arms[{cell.arm!r}] site {j} (at={s.at!r}): {exc}") from exc
    return model


def check_one_batch(
    model: torch.nn.Module, part: tuple[torch.Tensor, torch.Tensor], loss_fn: Any, loss_name: str, dtype: torch.dtype
) -> None:
    """The model's forward and the loss on two samples, so that a model that does not fit the data or
    the loss (a last layer too narrow for the classes, features of another shape) is refused here,
    not in a training job's traceback."""
    x, y = part[0][:2], part[1][:2]
    with torch.no_grad():
        with about("model"):
            try:
                out = model.to(dtype).eval()(x.to(dtype) if x.is_floating_point() else x)
            except Exception as exc:  # the user's module: whatever its forward raises on the data
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ValueError(
                    f"model: its forward fails on 2 samples of data with x of shape {list(x.shape)}: "
                    f"{type(exc).__name__}: {first}"
                ) from exc
        if not isinstance(out, torch.Tensor):
            return  # a structured output: the user's loss knows it, and the first step will tell
        with about("loss"):
            classes = int(part[1].max()) + 1 if loss_name == "ce" and not part[1].is_floating_point() else 0
            if classes and (out.ndim != 2 or out.shape[1] < classes):
                raise ValueError(
                    f"loss='ce': the model outputs shape {list(out.shape)} for 2 samples, but y has labels up "
                    f"to {classes - 1}: the last layer needs {classes} outputs per sample"
                )
            try:
                loss_fn(out, y)
            except Exception as exc:  # torch's message on shapes; named with the loss and the shapes
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ValueError(
                    f"loss={loss_name!r} does not fit the model's outputs of shape {list(out.shape)} and targets "
                    f"of shape {list(y.shape)}: {type(exc).__name__}: {first}"
                ) from exc
