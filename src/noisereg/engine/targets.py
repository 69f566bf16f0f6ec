"""Target noise for the engine: the sites layer's label noise, on class-probability rows.

The engine trains classification targets as class-probability rows ``[..., C]`` (``bce`` targets y as
``[1 − y, y]``), so any kind that takes soft targets works at the ``"targets"`` site:
:class:`noisereg.sites.LabelSmoothing`, :class:`noisereg.sites.LabelFlip`,
:class:`noisereg.sites.DisturbLabel`; regression targets take any :mod:`noisereg.noise` kind
(ỹ = y + σ·ε with :class:`~noisereg.noise.Gaussian`).

:class:`LabelFlip` here names its destination rule ``mode`` (``"symmetric"`` or ``"disturb"``) and
calls :func:`noisereg.sites.flip_labels` (pattern ``"symmetric"`` or ``"uniform"``): the same formula,
kept for callers written against the engine's earlier configs.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from noisereg.noise.base import NoiseKind, Strength
from noisereg.schedules import Schedule
from noisereg.sites.targets import LabelSmoothing, flip_labels, label_smoothing

__all__ = ["LabelSmoothing", "LabelFlip", "label_smoothing", "label_flip"]

_PATTERN = {"symmetric": "symmetric", "disturb": "uniform"}


def label_flip(
    q: Tensor,
    rate: Strength,
    *,
    mode: Literal["symmetric", "disturb"] = "symmetric",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Label flipping of class-probability rows q [..., C]: :func:`noisereg.sites.flip_labels`.

    ``mode="symmetric"``: a flipped label goes uniformly to one of the C − 1 other classes (the
    realized flip rate is ``rate``); ``mode="disturb"`` (DisturbLabel, Xie et al. 2016): uniformly
    over all C classes, so the label changes with probability rate·(C − 1)/C.
    """
    if mode not in _PATTERN:
        raise ValueError(f"mode={mode!r} must be 'symmetric' or 'disturb'")
    return flip_labels(q, rate, pattern=_PATTERN[mode], generator=generator)


@dataclasses.dataclass(frozen=True)
class LabelFlip(NoiseKind):
    """Config of :func:`label_flip` (main strength ``rate``)."""

    rate: float | Schedule | Tensor = 0.1
    mode: Literal["symmetric", "disturb"] = "symmetric"

    strength_field = "rate"
    strength_bounds = {"low": 0.0, "high": 1.0}
    function = staticmethod(label_flip)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in _PATTERN:
            raise ValueError(f"mode={self.mode!r} must be 'symmetric' or 'disturb'")
