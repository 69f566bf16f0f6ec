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

    Args:
        x: floating-point tensor.
        amount: probability in [0, 1] that a position is replaced; a float or a tensor of shape [batch].
        salt_vs_pepper: probability in [0, 1] that a replaced position is salt.
        low, high: the pepper and salt values.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: amount or salt_vs_pepper outside [0, 1], low or high not finite.

    >>> y = impulse(torch.full((1000,), 0.5), 0.1, generator=torch.Generator().manual_seed(0))
    >>> sorted(set(y.tolist()))
    [0.0, 0.5, 1.0]
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

    Args:
        x: floating-point tensor.
        scale: > 0, or inf for no noise; a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: scale <= 0 or NaN, or x has negative values.

    >>> shot(torch.ones(3), float("inf")).tolist()
    [1.0, 1.0, 1.0]
    >>> y = shot(torch.ones(4), 10.0, generator=torch.Generator().manual_seed(0))
    >>> bool(((y * 10) == (y * 10).round()).all())
    True
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
    """Config of :func:`impulse` (salt-and-pepper).

    Fields: the parameters of :func:`impulse` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`impulse`, when the config is made (a schedule: by its range).

    >>> noise = Impulse(amount=0.1)
    >>> noise(torch.full((2, 3), 0.5), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.full((2, 3), 0.5).shape
    True
    """

    amount: float | Schedule | Tensor = 0.05
    salt_vs_pepper: float = 0.5
    low: float = 0.0
    high: float = 1.0

    function = staticmethod(impulse)


@dataclasses.dataclass(frozen=True)
class Shot(NoiseKind, kind="shot"):
    """Config of :func:`shot`: Poisson(x·scale)/scale.

    Fields: the parameters of :func:`shot` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`shot`, when the config is made (a schedule: by its range).

    >>> noise = Shot(scale=10.0)
    >>> noise(torch.ones(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.ones(2, 3).shape
    True
    """

    scale: float | Schedule | Tensor = 100.0
    clip: Clip = None

    function = staticmethod(shot)
