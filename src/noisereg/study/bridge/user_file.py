"""A study file of one's own model (``[model] factory``, ``[data] loader``, arms of noise kinds)
turned into the arguments of :func:`noisereg.study.run_model`, and an error of those arguments traced
back to the key of the file that gave it. Nothing is trained here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from noisereg.engine.loop import AttachSite
from noisereg.noise import NoiseKind, Speckle
from noisereg.noise.kinds import KINDS
from noisereg.study.bridge.user import import_object
from noisereg.study.config import StudyConfigError
from noisereg.study.config.user import USER_KINDS, UserStudyConfig

__all__ = ["KIND_CLASSES", "file_arguments", "file_error"]


# The table of noise kinds (but saturation noise, which belongs to the hard activations it
# replaces, not to a site of attach), plus an alias.
KIND_CLASSES: dict[str, type[NoiseKind]] = {
    **{name: kind.load() for name, kind in KINDS.items() if name != "saturation"},
    "speckle": Speckle,
}
if set(KIND_CLASSES) != set(USER_KINDS):  # the config's names and this table are one list
    raise ImportError(f"KIND_CLASSES and config.user.USER_KINDS differ: {set(KIND_CLASSES) ^ set(USER_KINDS)}")


def _call(fn: Any, kwargs: Mapping[str, Any], key: str, source: str) -> Any:
    try:
        return fn(**kwargs)
    except Exception as exc:  # the user's code: any failure is reported under the key that named it
        raise StudyConfigError(
            [(key, f"calling it with {dict(kwargs)} failed: {type(exc).__name__}: {exc}")], source
        ) from exc


def _imported(path: str, key: str, source: str) -> Any:
    try:
        return import_object(path, name=key)
    except ValueError as exc:
        raise StudyConfigError([(key, str(exc))], source) from None


def file_arguments(cfg: UserStudyConfig, *, source: str = "study") -> dict[str, Any]:
    """The keyword arguments of :func:`noisereg.study.run_model` for a user study file: the factory
    and loader imported (the loader called once), every site built. Raises :class:`StudyConfigError`
    naming the key (``model.factory``, ``data.loader``, ``arms[i].noise[j]``) of what fails."""
    factory = _imported(cfg.model.factory, "model.factory", source)
    kwargs = dict(cfg.model.kwargs)

    def model() -> nn.Module:
        return _call(factory, kwargs, "model.factory", source)

    data = _call(_imported(cfg.data.loader, "data.loader", source), cfg.data.kwargs, "data.loader", source)
    loss: Any = cfg.training.loss
    if ":" in loss:
        loss = _imported(loss, "training.loss", source)
        loss = loss() if isinstance(loss, type) else loss
    arms: dict[str, list[AttachSite]] = {}
    grid: dict[str, Any] = {}
    for i, arm in enumerate(cfg.arms):
        sites = []
        for j, table in enumerate(arm.noise):
            try:
                noise = KIND_CLASSES[table.kind](**table.parameters())
            except (TypeError, ValueError) as exc:
                raise StudyConfigError([(f"arms[{i}].noise[{j}]", f"{table.kind}: {exc}")], source) from None
            sites.append(AttachSite(noise, table.at, tuple(sorted(table.options().items()))))
        arms[arm.name] = sites
        if arm.grid is not None:
            grid[arm.name] = (
                arm.grid if isinstance(arm.grid, list) else {"site": arm.grid.site, "values": arm.grid.values}
            )
    opt = cfg.optimizer
    makers = {
        "sgd": lambda p: torch.optim.SGD(
            p, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay
        ),
        "adam": lambda p: torch.optim.Adam(p, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay),
        "adamw": lambda p: torch.optim.AdamW(p, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay),
    }
    return {
        "model": model,
        "data": data,
        "arms": arms,
        "grid": grid,
        "loss": loss,
        "optimizer": makers[opt.name],
        "clip_grad_norm": opt.clip_grad_norm,
        "epochs": cfg.training.epochs,
        "batch_size": cfg.training.batch_size,
        "eval_every": cfg.training.eval_every,
        "task": cfg.training.task,
        "seeds": cfg.seeds,
        "seed": cfg.seed,
        "folds": cfg.folds,
        "metric": cfg.metric,
        "name": cfg.name,
        "description": cfg.description,
        "claim": cfg.claim,
        "versus": {arm.name: arm.versus for arm in cfg.arms if arm.versus is not None},
    }


# run_model's arguments as the keys of a study file (file_arguments builds the one from the other)
_FILE_KEYS = {
    "model": "model.factory",
    "data": "data.loader",
    "loss": "training.loss",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "eval_every": "training.eval_every",
    "task": "training.task",
    "optimizer": "optimizer",
    "clip_grad_norm": "optimizer.clip_grad_norm",
    "folds": "folds",
    "seed": "seed",
    "seeds": "seeds",
    "metric": "metric",
    "name": "name",
    "description": "description",
    "claim": "claim",
    "versus": "arms",
}


def _file_key(cfg: UserStudyConfig, argument: tuple[str | int, ...]) -> str | None:
    """The key path of the study file that set run_model's ``argument`` (see :func:`about`); None
    for an argument the file does not set (``device``, ``storage``, ``workers``: the command's options)."""
    head, *rest = argument
    if head in ("arms", "grid"):
        index = next((i for i, arm in enumerate(cfg.arms) if rest and arm.name == rest[0]), None)
        if index is None:
            return "arms"
        if head == "grid":
            return f"arms[{index}].grid"
        return f"arms[{index}].noise[{rest[1]}]" if len(rest) > 1 else f"arms[{index}]"
    return _FILE_KEYS.get(str(head))


def file_error(cfg: UserStudyConfig, exc: TypeError | ValueError, source: str) -> StudyConfigError | None:
    """``exc``, an error of run_model's checks, as the :class:`StudyConfigError` of the study file's
    key that set the argument it names; None for an argument the file does not set (a command's
    option, named as the argument it sets)."""
    argument = getattr(exc, "argument", None)
    key = _file_key(cfg, argument) if argument else None
    if key is None:
        return None
    # a site's error names the arm in Python's words; the file's key says it better
    text = str(exc.__cause__ if key.startswith("arms[") and exc.__cause__ is not None else exc)
    return StudyConfigError([(key, text)], source)
