"""Noise that replaces or resamples values: impulse (salt-and-pepper) and shot (Poisson) noise."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from noisereg._checks import check_real
from noisereg.noise.base import (
    Clip,
    NoiseKind,
    Strength,
    can_inspect_values,
    check_clip,
    check_generator,
    check_input,
    check_main_strength,
    check_mask,
    draw_dtype,
    finish,
    is_identity,
    rand_like,
    torch_generator,
)
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = ["impulse", "shot", "Impulse", "Shot"]


def impulse(
    x: Tensor,
    amount: Strength,
    *,
    salt_vs_pepper: float = 0.5,
    low: float = 0.0,
    high: float = 1.0,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Impulse (salt-and-pepper) noise: each position is replaced with probability ``amount``.

    A replaced position becomes ``high`` (salt) with probability ``salt_vs_pepper``, else ``low``
    (pepper). One uniform draw u per position decides both: salt if u < amount·salt_vs_pepper,
    pepper if amount·salt_vs_pepper <= u < amount. Defaults suit images in [0, 1]; for standardized
    data pass the range you want. Replaced positions carry no gradient.
    """
    check_input(x, kind="impulse")
    amount = check_main_strength(amount, kind="impulse", x=x)
    check_real(salt_vs_pepper, "salt_vs_pepper", low=0.0, high=1.0)
    low, high = check_real(low, "low"), check_real(high, "high")
    mask, generator = check_mask(mask, x), check_generator(generator, x)
    if is_identity(amount, 0.0):
        return x
    u = rand_like(x, generator)
    replaced = u < amount
    salt = u < amount * salt_vs_pepper
    del u
    noisy = x.masked_fill(replaced, low).masked_fill_(salt, high)
    return finish(noisy, x, mask=mask, clip=None)


def shot(
    x: Tensor,
    scale: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Shot (Poisson) noise: x̃ = Poisson(x·scale) / scale, for x >= 0.

    ``scale`` is the photon count of a unit value: the larger, the weaker the noise (relative std
    1/√(x·scale)); ``inf`` means no noise. Hendrycks & Dietterich's shot corruption is this with
    ``clip=(0, 1)``. Gradients pass straight through (x̃ = x + a detached perturbation).
    """
    check_input(x, kind="shot")
    scale = check_main_strength(scale, kind="shot", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(scale, math.inf):
        return x
    if can_inspect_values(x) and bool((x < 0).any()):
        raise ValueError(
            f"shot noise counts photons: x must be >= 0, got min {x.min().item()}; shift or rescale "
            "the data to a non-negative range first"
        )
    counts = torch.poisson(x.detach().to(draw_dtype(x)) * scale, generator=torch_generator(generator)).div_(scale)
    noisy = x + (counts - x.detach()) if x.requires_grad else counts
    return finish(noisy, x, mask=mask, clip=clip)


@dataclasses.dataclass(frozen=True)
class Impulse(NoiseKind, kind="impulse"):
    """Config of :func:`impulse` (salt-and-pepper)."""

    amount: float | Schedule | Tensor = 0.05
    salt_vs_pepper: float = 0.5
    low: float = 0.0
    high: float = 1.0

    function = staticmethod(impulse)


@dataclasses.dataclass(frozen=True)
class Shot(NoiseKind, kind="shot"):
    """Config of :func:`shot`: Poisson(x·scale)/scale."""

    scale: float | Schedule | Tensor = 100.0
    clip: Clip = None

    function = staticmethod(shot)
