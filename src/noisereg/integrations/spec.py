"""What the framework integrations share: one ``attach`` call described ahead of time."""

from __future__ import annotations

import dataclasses
from typing import get_args

import torch
from torch import nn

from noisereg.noise.base import NoiseKind
from noisereg.sites.activations import Where
from noisereg.sites.attach import At, Handle, attach
from noisereg.sites.selectors import Selector
from noisereg.sites.weights import Resample

__all__ = ["Attach"]


@dataclasses.dataclass(frozen=True)
class Attach:
    """One :func:`noisereg.attach` call, made by a callback once the model (and optimizer) exist.

    Fields are ``attach``'s arguments of the same names; the seed and, for ``at="gradients"``, the
    optimizer come from the callback.

    >>> from noisereg.noise import Gaussian
    >>> Attach(Gaussian(std=0.1), at="activations", select=nn.ReLU)
    Attach(noise=Gaussian(std=0.1, clip=None), at='activations', select=<class 'torch.nn.modules.activation.ReLU'>)

    Raises TypeError for a noise that is not a noise config, ValueError for an unknown site.
    """

    noise: NoiseKind
    at: At
    select: Selector | None = None
    where: Where = "after"
    arg: int | str = 0
    mask: str | None = None
    biases: bool = False
    resample: Resample = "step"
    scale_by_lr: bool = False
    stack: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.noise, NoiseKind):
            raise TypeError(
                "noise must be a noise config such as noisereg.noise.Gaussian(std=0.1), "
                f"got {type(self.noise).__name__}"
            )
        if self.at not in get_args(At):
            raise ValueError(f"at={self.at!r} must be one of {get_args(At)}")

    def __repr__(self) -> str:
        shown = [f"noise={self.noise!r}", f"at={self.at!r}"]
        for field in dataclasses.fields(self)[2:]:
            value = getattr(self, field.name)
            if value != field.default:
                shown.append(f"{field.name}={value!r}")
        return f"Attach({', '.join(shown)})"

    def apply(self, model: nn.Module, *, seed: int | None, optimizer: torch.optim.Optimizer | None = None) -> Handle:
        """``attach(model, ...)`` with these options; ``optimizer`` is used by gradient noise only."""
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)[2:]}
        if self.at == "gradients":
            options["optimizer"] = optimizer
        return attach(model, self.noise, self.at, seed=seed, **options)
