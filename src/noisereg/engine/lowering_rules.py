"""What the stacked MLP kernels take (:mod:`noisereg.engine.lowering`) besides the model (read in
:mod:`noisereg.engine.mlp_layout`): the loss, the optimizer, the noise kinds and the data, each read as
the kernels' own spec or refused with why.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from noisereg.engine.loop import LoopTask
from noisereg.engine.specs import MLPSpec, OptimSpec
from noisereg.layers import NoiseLayer
from noisereg.noise.base import NoiseKind
from noisereg.streams import Stream

__all__ = [
    "data_fits",
    "loss_smoothing",
    "loss_name",
    "optim_spec",
    "plain_noise",
    "without_noise",
]


_LOSSES = {nn.CrossEntropyLoss: "ce", nn.BCEWithLogitsLoss: "bce", nn.MSELoss: "mse"}


def loss_name(task: LoopTask) -> str | None:
    loss: Any = task.loss
    named = getattr(loss, "noisereg_loss", None)  # run_model's ce/bce/mse (noisereg.study.bridge.user.make_loss)
    if named in ("ce", "bce", "mse"):
        return str(named)
    kind = _LOSSES.get(type(loss))
    if kind is None or loss.reduction != "mean":
        return None
    if kind == "ce" and (loss.weight is not None or loss.ignore_index != -100):
        return None
    if kind == "bce" and (loss.weight is not None or loss.pos_weight is not None):
        return None
    return kind


def loss_smoothing(task: LoopTask) -> float:
    """The ε of torch's ``CrossEntropyLoss(label_smoothing=ε)`` (0 for any other loss): the kernels
    train on the targets (1 − ε)·q + ε/K, whose cross-entropy is the loss's."""
    loss: Any = task.loss
    return float(loss.label_smoothing) if type(loss) is nn.CrossEntropyLoss else 0.0


def optim_spec(optimizer: torch.optim.Optimizer) -> OptimSpec | str:
    """The optimizer as an :class:`OptimSpec` (torch's update rules exactly), or why it is not one."""
    if len(optimizer.param_groups) != 1:
        return "the optimizer has several parameter groups"
    g = optimizer.param_groups[0]
    if g.get("maximize") or g.get("differentiable") or not isinstance(g["lr"], float):
        return "the optimizer maximizes, is differentiable or has a tensor learning rate"
    if type(optimizer) is torch.optim.SGD:
        if g["dampening"] != 0:
            return "SGD with dampening"
        return OptimSpec(
            "sgd", lr=g["lr"], momentum=g["momentum"], nesterov=bool(g["nesterov"]), weight_decay=g["weight_decay"]
        )
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        if g["amsgrad"] or not isinstance(g["betas"][0], float):
            return "Adam with AMSGrad or tensor betas"
        # AdamW is Adam with decoupled weight decay (torch's AdamW sets the flag)
        decoupled = type(optimizer) is torch.optim.AdamW or bool(g.get("decoupled_weight_decay", False))
        return OptimSpec(
            "adamw" if decoupled else "adam",
            lr=g["lr"],
            betas=tuple(g["betas"]),
            eps=g["eps"],
            weight_decay=g["weight_decay"],
        )
    return f"the optimizer is {type(optimizer).__name__}, not SGD, Adam or AdamW"


def plain_noise(layer: Any) -> bool:
    """Whether ``layer`` is a plain noise layer drawing from a generator of its own (a Stream or a
    ``torch.Generator``), at a strength that is a number or a schedule (resolved at the step the layer
    would count): the kernels' :class:`~noisereg.engine.injection.SiteStream` applies its kind as the
    layer does, in closed form for additive or multiplicative Gaussian noise and Gaussian dropout
    without clip, else by the kind's own function on each replica's slice (differentiated by autograd
    in a hidden layer)."""
    kind = getattr(layer, "kind", None)
    strength = getattr(kind, "strength", None)
    return (
        type(layer) is NoiseLayer
        and isinstance(kind, NoiseKind)
        and (isinstance(strength, numbers.Real) or (callable(strength) and not isinstance(strength, Tensor)))
        and isinstance(layer.generator(torch.device("cpu")), (Stream, torch.Generator))
    )


def without_noise(kind: NoiseKind) -> NoiseKind:
    """``kind`` at its no-noise strength (a replica without noise at a place: its row is never drawn)."""
    return dataclasses.replace(kind, **{kind.strength_field: kind.identity})


def data_fits(spec: MLPSpec, loss: str | None, x: Tensor, y: Tensor, head: bool) -> bool:
    """Whether the data has the model's inputs and the loss's targets (else the vmap path raises the
    error the user's loop would): a sample of several dimensions only behind a leading ``Flatten``."""
    if (x.dim() > 2 and not head) or math.prod(x.shape[1:]) != spec.in_features:
        return False
    if loss == "ce":
        return y.dim() == 1 and not y.is_floating_point() and spec.out_features > 1
    if loss == "bce":
        return spec.out_features == 1 and y.numel() == len(x)
    return y.numel() == len(x) * spec.out_features
