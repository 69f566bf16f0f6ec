"""Whether tasks may train on the vectorized path (:mod:`noisereg.engine.vectorized`), and together.

:func:`refusal` reads a task's settings (the probe's trial step finds what only running the model
shows); :func:`same_setting` and :func:`group_key` say which tasks may share one stacked group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from noisereg.engine.loop import LoopTask

__all__ = ["group_key", "refusal", "same_setting"]


def refusal(task: LoopTask, *, kernels: bool = False) -> str | None:
    """Why ``task`` cannot train on the vectorized path, read from its settings; None when it may.
    ``kernels``: asked for the MLP kernels (:mod:`noisereg.engine.lowering`), where weight noise as
    increments or redrawn at every forward is no reason (they walk the stored weights; an MLP's
    forward uses each weight once; ``vmap`` can do neither)."""
    if task.fit is not None:
        return "fit= is the user's whole loop: each replica runs it"
    if task.step is not None:
        return "step= is the user's own training step: each replica runs it"
    if not (isinstance(task.train, tuple) and isinstance(task.test, tuple)) or task.collate is not None:
        return "the data is a Dataset: its batches come from a DataLoader per replica"
    for j, site in enumerate(task.sites):
        options = dict(site.options)
        if options.get("packed"):
            return f"site {j}: packed=True reads the forward's position ids per replica"
        if options.get("mask") is not None:
            return f"site {j}: mask={options['mask']!r} reads the forward's attention mask per replica"
        if getattr(site.noise, "one_shot", False):
            return f"site {j}: {type(site.noise).__name__} perturbs the model once, before training: per replica"
        if site.at == "weights" and options.get("resample", "step") not in (
            ("step", "forward") if kernels else ("step",)
        ):
            return f"site {j}: weight noise with resample={options['resample']!r} runs per replica"
        if site.at == "weights" and options.get("increments", "none") != "none" and not kernels:
            return f"site {j}: weight noise with increments={options['increments']!r} runs per replica"
        if options.get("where") == "state":
            return f"site {j}: noise on a recurrent state (where='state') runs per replica"
    return None


def same_setting(a: Any, b: Any) -> bool:
    """Whether two settings of tasks are the same: tensors (data, a strength) the same objects, tuples
    and dataclasses (sites, noise configs) alike field by field, the rest equal (a tensor's ``==`` is
    elementwise: a config holding ``tensor(0.1)`` is not the same setting as one holding 0.1)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_setting(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, (Tensor, torch.utils.data.Dataset)) or isinstance(b, (Tensor, torch.utils.data.Dataset)):
        return a is b
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        fields = [f.name for f in dataclasses.fields(a)]
        return type(a) is type(b) and all(same_setting(getattr(a, f), getattr(b, f)) for f in fields)
    return bool(a == b)


def group_key(task: LoopTask) -> tuple[str, ...]:
    """Tasks of one group must agree on this: the kinds of their target noise (soft labels from label
    smoothing, say, cannot be stacked with class indices)."""
    return tuple(type(site.noise).__name__ for site in task.sites if site.at == "targets")
