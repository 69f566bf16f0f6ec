"""Noise on classification targets: label smoothing and label flipping.

Both act on class-probability tensors ``q`` of shape ``[..., C]`` (one-hot rows for hard labels), so a
smoothed target is just another distribution and the losses need no special case. The engine turns
``bce`` targets y into ``[1 − y, y]`` rows and back. Regression targets take any kind of
:mod:`noisereg.noise` directly (ỹ = y + σ·ε with :class:`~noisereg.noise.Gaussian`).

Each config is a :class:`~noisereg.noise.NoiseKind`: frozen, callable as ``kind(q, step=, generator=)``,
its main strength may be a schedule, and ``with_strength`` gives per-replica copies.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from noisereg.noise.base import NoiseKind, Strength, check_generator, check_input, check_strength, is_identity
from noisereg.schedules import Schedule

__all__ = ["label_smoothing", "label_flip", "LabelSmoothing", "LabelFlip"]


def _check_probabilities(q: Tensor, kind: str) -> int:
    check_input(q, kind=kind)
    if q.dim() < 1 or q.shape[-1] < 2:
        raise ValueError(f"{kind}: q must have shape [..., classes >= 2], got {list(q.shape)}")
    return q.shape[-1]


def label_smoothing(
    q: Tensor,
    epsilon: Strength,
    *,
    spread: Literal["all", "others"] = "all",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Label smoothing of class probabilities q [..., C].

    ``spread="all"`` (torch's ``CrossEntropyLoss(label_smoothing=ε)``): q̃ = (1 − ε)·q + ε/C.
    ``spread="others"`` puts ε only on the other classes: q̃ = (1 − ε)·q + ε·(1 − q)/(C − 1).
    ``epsilon`` in [0, 1], a float or a tensor [batch]; deterministic (``generator`` is accepted for a
    uniform call signature and not used). Szegedy et al. 2016.

    >>> label_smoothing(torch.tensor([[0.0, 1.0]]), 0.2).tolist()
    [[0.10000000149011612, 0.8999999761581543]]
    """
    classes = _check_probabilities(q, "label_smoothing")
    if spread not in ("all", "others"):
        raise ValueError(f"spread={spread!r} must be 'all' or 'others'")
    epsilon = check_strength(epsilon, name="epsilon", x=q, high=1.0)
    check_generator(generator, q)
    if is_identity(epsilon, 0.0):
        return q
    if spread == "all":
        return q * (1.0 - epsilon) + epsilon / classes
    return q * (1.0 - epsilon) + (1.0 - q) * (epsilon / (classes - 1))


def label_flip(
    q: Tensor,
    rate: Strength,
    *,
    mode: Literal["symmetric", "disturb"] = "symmetric",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Label flipping: each row's label (its argmax) is replaced with probability ``rate``.

    ``mode="symmetric"``: the new label is uniform over the C − 1 other classes, so the realized flip
    rate is ``rate``. ``mode="disturb"`` (DisturbLabel, Xie et al. 2016): uniform over all C classes, so
    the label actually changes with probability rate·(C − 1)/C. A replaced row becomes one-hot; kept
    rows are returned as they are. Draws per row: u ~ U(0, 1) decides the flip, then v ~ U(0, 1) the
    class, both from ``generator``.
    """
    classes = _check_probabilities(q, "label_flip")
    if mode not in ("symmetric", "disturb"):
        raise ValueError(f"mode={mode!r} must be 'symmetric' or 'disturb'")
    rate = check_strength(rate, name="rate", x=q, high=1.0)
    generator = check_generator(generator, q)
    if is_identity(rate, 0.0):
        return q
    rows = q.shape[:-1]
    u = torch.rand(rows, generator=generator, device=q.device)
    v = torch.rand(rows, generator=generator, device=q.device)
    rate = rate.reshape(rate.shape[:-1]) if isinstance(rate, Tensor) else rate
    labels = q.argmax(-1)
    if mode == "symmetric":
        new = (labels + 1 + (v * (classes - 1)).long().clamp_(max=classes - 2)) % classes
    else:
        new = (v * classes).long().clamp_(max=classes - 1)
    flipped = torch.nn.functional.one_hot(new, classes).to(q.dtype)
    return torch.where((u < rate).unsqueeze(-1), flipped, q)


@dataclasses.dataclass(frozen=True)
class LabelSmoothing(NoiseKind):
    """Config of :func:`label_smoothing` (main strength ``epsilon``)."""

    epsilon: float | Schedule | Tensor = 0.1
    spread: Literal["all", "others"] = "all"

    strength_field = "epsilon"
    function = staticmethod(label_smoothing)


@dataclasses.dataclass(frozen=True)
class LabelFlip(NoiseKind):
    """Config of :func:`label_flip` (main strength ``rate``)."""

    rate: float | Schedule | Tensor = 0.1
    mode: Literal["symmetric", "disturb"] = "symmetric"

    strength_field = "rate"
    function = staticmethod(label_flip)
