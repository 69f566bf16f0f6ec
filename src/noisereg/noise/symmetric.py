"""Symmetric ±σ noise (Rademacher signs): the draw of SymNoise and of label-noise SGD's ±σ labels."""

from __future__ import annotations

import dataclasses

import torch  # noqa: F401 - the namespace of the doctests below
from torch import Tensor

from noisereg.noise.base import (
    Clip,
    NoiseKind,
    Strength,
    check_clip,
    check_generator,
    check_input,
    check_main_strength,
    check_mask,
    finish,
    is_identity,
    rand_like,
)
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = ["rademacher", "Rademacher"]


def rademacher(
    x: Tensor,
    std: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Symmetric Bernoulli noise: x̃ = x + std·s, s_i = +1 or −1 with probability 1/2 each.

    Each sign comes from one uniform draw u of the generator, s = +1 where u >= 0.5 and −1 where
    u < 0.5, so the noise has mean 0 and standard deviation exactly ``std`` (every element moves by
    exactly ``std``).

    Args:
        x: floating-point tensor.
        std: >= 0, the size of every step (and the noise's standard deviation); a float or a tensor
            of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std is negative, NaN or infinite.

    >>> r = rademacher(torch.zeros(1000), 0.5, generator=torch.Generator().manual_seed(0))
    >>> sorted(set(r.tolist()))
    [-0.5, 0.5]
    """
    check_input(x, kind="rademacher")
    std = check_main_strength(std, kind="rademacher", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    u = rand_like(x, generator)
    noisy = u.ge(0.5).to(u.dtype).mul_(2.0).sub_(1.0).mul_(std).add_(x)
    return finish(noisy, x, mask=mask, clip=clip)


@dataclasses.dataclass(frozen=True)
class Rademacher(NoiseKind, kind="rademacher"):
    """Config of :func:`rademacher`: x ± std.

    Fields: the parameters of :func:`rademacher` but ``x`` and ``generator``; the strength may also be
    a :class:`~noisereg.schedules.Schedule`.

    Raises:
        TypeError, ValueError: as :func:`rademacher`, when the config is made (a schedule: by its range).

    >>> Rademacher(std=0.0)(torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    std: float | Schedule | Tensor = 0.1
    clip: Clip = None

    function = staticmethod(rademacher)
