"""Gaussian noise scaled per filter to the filter's norm: random weight perturbation (RWP).

A weight tensor's filters are its slices along dim 0: the rows of a ``Linear`` weight ``[out, in]``
(one output unit each), the output channels of a convolution ``[out, in, kh, kw]``, the gate rows of
an LSTM's ``weight_ih``/``weight_hh``. Filter-wise noise gives each filter noise proportional to its
own L2 norm, so the perturbation has the same relative size in every filter whatever the layer's
scale (a ReLU network's function does not change when one filter is scaled up and the next layer
scaled down; noise of one absolute σ would):

    x̃_i = x_i + σ·‖x_i‖₂·ε_i,   ε ~ N(0, I),   ‖x_i‖₂ = the L2 norm of filter i (all its entries).

A 1-D tensor (a bias) has one entry per filter: x̃_i = x_i + σ·|x_i|·ε_i. This is the perturbation of
Bisla et al. 2022 (low-pass filtering SGD) and of random weight perturbation (Li et al. 2022,
"Efficient generalization improvement guided by random weight perturbation"; m-RWP, Li et al. 2024):
ε ~ N(0, σ²·diag(‖W_1‖², …, ‖W_k‖²)) per filter. At ``at="weights"`` the gradient is taken at W̃ and
applies to the clean W: one gradient per step, against SAM's two.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
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
    draw_dtype,
    finish,
    is_identity,
    randn_like,
)
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = ["filter_gaussian", "filter_norms", "FilterGaussian"]


def filter_norms(x: Tensor) -> Tensor:
    """‖x_i‖₂ of each filter (slice along dim 0), shaped ``[filters, 1, ...]`` to broadcast against ``x``.

    >>> filter_norms(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist()
    [[5.0], [1.0]]
    """
    if x.dim() == 0:
        raise ValueError("filter-wise noise needs a tensor with a filter dimension (dim 0), got a scalar")
    flat = x.detach().to(draw_dtype(x)).reshape(x.shape[0], -1)
    return torch.linalg.vector_norm(flat, dim=1).reshape((-1,) + (1,) * (x.dim() - 1))


def filter_gaussian(
    x: Tensor,
    std: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Filter-wise Gaussian noise: x̃_i = x_i + std·‖x_i‖₂·ε_i, ε ~ N(0, I), filters along dim 0.

    The norms are those of the clean ``x`` and carry no gradient (the noise is a perturbation, not
    a function of the weights to differentiate through).

    Args:
        x: floating-point tensor of at least one dimension; dim 0 indexes the filters.
        std: σ >= 0, relative to each filter's norm; a float or a tensor of shape [filters].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std is negative, NaN or infinite, or x is a
            scalar.

    >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    >>> out = filter_gaussian(w, 0.1, generator=torch.Generator().manual_seed(0))
    >>> out[1].tolist()  # a zero filter takes no noise
    [0.0, 0.0]
    """
    check_input(x, kind="filter_gaussian")
    std = check_main_strength(std, kind="filter_gaussian", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    scale = filter_norms(x).mul_(std)
    noisy = randn_like(x, generator).mul_(scale).add_(x)
    return finish(noisy, x, mask=mask, clip=clip)


@dataclasses.dataclass(frozen=True)
class FilterGaussian(NoiseKind, kind="filter_gaussian"):
    """Config of :func:`filter_gaussian`: x_i + std·‖x_i‖₂·ε_i per filter (random weight perturbation).

    Meant for ``attach(model, FilterGaussian(std=σ), at="weights")`` (RWP: the gradient at the
    perturbed weights updates the clean ones). Fields: the parameters of :func:`filter_gaussian` but
    ``x`` and ``generator``; ``std`` may be a :class:`~noisereg.schedules.Schedule`.

    >>> FilterGaussian(std=0.01)
    FilterGaussian(std=0.01, clip=None)
    """

    std: float | Schedule | Tensor = 0.01
    clip: Clip = None

    function = staticmethod(filter_gaussian)
    per_tensor: ClassVar[bool] = True
