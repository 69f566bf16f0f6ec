"""What the framework integrations share: one ``attach`` call described ahead of time, the name a
strength is logged under, and the warning for noise that training never reached."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import get_args

import torch
from torch import nn

from noisereg.noise.base import NoiseKind
from noisereg.sites.activations import Where
from noisereg.sites.attach import At, Handle, attach
from noisereg.sites.selectors import Selector
from noisereg.sites.weights import Resample

__all__ = ["Attach", "UnusedNoiseWarning", "metric_name", "applied", "warn_unused"]


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


class UnusedNoiseWarning(UserWarning):
    """Noise was attached, but no training forward (or optimizer step) of an epoch reached it."""


def metric_name(site: str, where: str) -> str:
    """The name a strength is logged under: :func:`noisereg.describe`'s site and place in letters,
    digits and ``_ . - /`` only, which every logger accepts (MLflow refuses quotes; Lightning's
    MLFlowLogger renames such keys); a first word of the place that repeats the site is dropped.

    >>> metric_name("activations", "after 'net.1'")
    'noise/activations_after_net.1'
    >>> metric_name("weights", "weight 'net.0.weight'")
    'noise/weights_net.0.weight'
    """
    words = where.split(" ", 1)
    if len(words) == 2 and words[0] in (site, site.removesuffix("s")):
        where = words[1]
    return "noise/" + re.sub(r"[^A-Za-z0-9_.\-/]+", "_", f"{site} {where}").strip("_")


def applied(handles: Sequence[Handle]) -> dict[int, int]:
    """Each attached noise layer's ``applied`` count now, by the layer's id: the mark for :func:`warn_unused`."""
    return {id(layer): layer.applied for handle in handles for layer in handle.layers}


def warn_unused(handles: Sequence[Handle], since: Mapping[int, int], causes: Mapping[str, str]) -> None:
    """Warn (:class:`UnusedNoiseWarning`) for each place whose noise drew nothing since ``since`` although
    it was on: not switched off by ``noise_enabled(False)`` and not at zero strength by its schedule.

    ``causes[site]`` is the likely reason, written for the framework at hand.
    """
    for handle in handles:
        for place, layer in zip(handle.places, handle.layers, strict=True):
            if layer.applied != since.get(id(layer), layer.applied) or layer.forced is False:
                continue
            if layer.kind.is_off(layer.step):
                continue
            cause = causes.get(handle.site, "the module it sits on did not run in training")
            warnings.warn(
                f"noise at {handle.site} {place} was attached but never applied during an epoch of training: {cause}",
                UnusedNoiseWarning,
                stacklevel=3,
            )
