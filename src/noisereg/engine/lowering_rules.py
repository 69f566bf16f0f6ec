"""What the stacked MLP kernels take (:mod:`noisereg.engine.lowering`): the model's layers, the loss,
the optimizer, the noise kinds and the data, each read as the kernels' own spec or refused with why.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, cast

import torch
from torch import Tensor, nn

from noisereg.engine.loop import LoopTask
from noisereg.engine.specs import MLPSpec, OptimSpec
from noisereg.engine.vocabulary import Activation
from noisereg.layers import NoiseLayer
from noisereg.noise.base import NoiseKind
from noisereg.streams import Stream

__all__ = [
    "Layout",
    "activation_name",
    "data_fits",
    "label_smoothing",
    "loss_name",
    "mlp_of",
    "optim_spec",
    "plain_noise",
    "without_noise",
]


_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SELU: "selu", nn.SiLU: "silu"}
_LOSSES = {nn.CrossEntropyLoss: "ce", nn.BCEWithLogitsLoss: "bce", nn.MSELoss: "mse"}


def activation_name(module: nn.Module) -> str | None:
    if type(module) in _ACTIVATIONS:
        return _ACTIVATIONS[type(module)]
    if type(module) is nn.GELU and module.approximate == "none":
        return "gelu"
    if type(module) is nn.ELU and module.alpha == 1.0:
        return "elu"
    if type(module) is nn.LeakyReLU and module.negative_slope == 0.01:
        return "leaky_relu"
    if type(module) is nn.Softplus and (module.beta, module.threshold) == (1.0, 20.0):
        return "softplus"
    return None


@dataclasses.dataclass(frozen=True)
class Layout:
    """A user's ``nn.Sequential`` MLP as the kernels take it: the network, the names of its Linear
    layers and activations in order, the module after the last Linear (a ``Flatten``), whether a
    ``Flatten`` of each sample comes first, and its ``nn.Dropout`` modules: hidden layer i -> (name, p)
    for a dropout right after activation i."""

    spec: MLPSpec
    linears: list[str]
    activations: list[str]
    tail: nn.Module | None
    head: bool
    dropouts: dict[int, tuple[str, float]]


def mlp_of(model: nn.Module) -> Layout | str:
    """The model's :class:`Layout`, or why the kernels do not take it."""
    if type(model) is not nn.Sequential:
        return f"the model is a {type(model).__name__}, not an nn.Sequential of Linear layers and activations"
    children = list(model.named_children())
    tail = None
    if children and type(children[-1][1]) is nn.Flatten:
        tail = children.pop()[1]
    first = children[0][1] if children else None
    head = isinstance(first, nn.Flatten) and (first.start_dim, first.end_dim) == (1, -1)
    if head:  # an image MLP's first layer: each sample's features in one row, as the kernels take them
        children.pop(0)
    linears, acts, dropouts = children[:1], [], {}
    rest = children[1:]
    while rest:  # activation, optionally a dropout, Linear
        acts.append(rest.pop(0))
        if rest and type(rest[0][1]) is nn.Dropout:
            name, dropout = rest.pop(0)
            dropouts[len(acts) - 1] = (name, float(cast(nn.Dropout, dropout).p))
        if not rest:
            return "the Sequential does not end with a Linear"
        linears.append(rest.pop(0))
    if not linears or any(type(m) is not nn.Linear or m.bias is None for _, m in linears):
        return (
            "the Sequential does not alternate nn.Linear layers with biases and activations (each "
            "optionally followed by an nn.Dropout), ending with a Linear"
        )
    names = {activation_name(m) for _, m in acts}
    if None in names or len(names) > 1:
        return "the activations are not one kind of ReLU, Tanh, Sigmoid, GELU, ELU (alpha 1), SELU, SiLU, LeakyReLU (slope 0.01) or Softplus (beta 1, threshold 20)"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(True for _ in model.buffers()) or any(m.__dict__.get(h) for m in model.modules() for h in hooks):
        return "the model has buffers or hooks of its own"
    if not all(p.requires_grad for p in model.parameters()):
        return "some parameters are frozen (requires_grad=False)"
    sizes = [cast(nn.Linear, m) for _, m in linears]
    activation = cast(Activation, names.pop() if names else "relu")
    spec = MLPSpec(sizes[0].in_features, tuple(m.out_features for m in sizes[:-1]), sizes[-1].out_features, activation)
    return Layout(spec, [n for n, _ in linears], [n for n, _ in acts], tail, head, dropouts)


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


def label_smoothing(task: LoopTask) -> float:
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
        if g["dampening"] != 0 or g["nesterov"]:
            return "SGD with dampening or Nesterov momentum"
        return OptimSpec("sgd", lr=g["lr"], momentum=g["momentum"], weight_decay=g["weight_decay"])
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
