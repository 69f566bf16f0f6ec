"""Additive noise that does not depend on the signal: Gaussian and uniform."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from noisereg.noise.base import (
    Clip,
    NoiseKind,
    Strength,
    add_normal,
    check_clip,
    check_generator,
    check_input,
    check_main_strength,
    check_mask,
    check_strength,
    finish,
    is_identity,
    rand_like,
)
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = ["gaussian", "uniform", "Gaussian", "Uniform"]


def gaussian(
    x: Tensor,
    std: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Additive Gaussian noise: x̃ = x + std·ε, ε ~ N(0, I).

    Args:
        x: floating-point tensor.
        std: standard deviation >= 0 (not the variance); a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std is negative, NaN or infinite.

    >>> g = torch.Generator().manual_seed(0)
    >>> gaussian(torch.zeros(3), 0.0) .tolist()
    [0.0, 0.0, 0.0]
    >>> gaussian(torch.zeros(2, 3), 0.5, generator=g).shape
    torch.Size([2, 3])
    """
    check_input(x, kind="gaussian")
    std = check_main_strength(std, kind="gaussian", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    noisy = add_normal(x, std, generator)
    return finish(noisy, x, mask=mask, clip=clip)


def uniform(
    x: Tensor,
    half_width: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Additive uniform noise: x̃ = x + u, u ~ U(−a, a) with a = ``half_width``.

    The standard deviation of u is a/√3; :class:`Uniform` takes ``std`` and sets a = std·√3.

    Args:
        x: floating-point tensor.
        half_width: a >= 0; a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: half_width is negative, NaN or infinite.

    >>> u = uniform(torch.zeros(1000), 0.5, generator=torch.Generator().manual_seed(0))
    >>> bool(u.abs().max() <= 0.5)
    True
    """
    check_input(x, kind="uniform")
    a = check_main_strength(half_width, kind="uniform", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(a, 0.0):
        return x
    noisy = rand_like(x, generator).mul_(2.0).sub_(1.0).mul_(a).add_(x)
    return finish(noisy, x, mask=mask, clip=clip)


@dataclasses.dataclass(frozen=True)
class Gaussian(NoiseKind, kind="gaussian"):
    """Config of :func:`gaussian`: x + std·ε.

    Fields: the parameters of :func:`gaussian` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`gaussian`, when the config is made (a schedule: by its range).

    >>> noise = Gaussian(std=0.1)
    >>> noise(torch.zeros(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.zeros(2, 3).shape
    True
    """

    std: float | Schedule | Tensor = 0.1
    clip: Clip = None

    function = staticmethod(gaussian)


@dataclasses.dataclass(frozen=True)
class Uniform(NoiseKind, kind="uniform"):
    """Config of :func:`uniform`: x + U(−a, a). Give ``half_width`` a, or ``std`` for a = std·√3.

    Fields: the parameters of :func:`uniform` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`uniform`, when the config is made (a schedule: by its range).

    >>> noise = Uniform(half_width=0.1)
    >>> noise(torch.zeros(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.zeros(2, 3).shape
    True
    """

    half_width: float | Schedule | Tensor | None = None
    clip: Clip = None
    std: dataclasses.InitVar[float | None] = None

    function = staticmethod(uniform)

    def __post_init__(self, std: float | None) -> None:
        if (self.half_width is None) == (std is None):
            raise ValueError(f"Uniform takes exactly one of half_width={self.half_width!r} and std={std!r}")
        if std is not None:
            value = check_strength(std, name="Uniform.std", x=torch.empty(0))
            object.__setattr__(self, "half_width", value * math.sqrt(3.0))
        super().__post_init__()
