"""Noise that scales with the signal: multiplicative Gaussian (speckle), Gaussian and alpha dropout."""

from __future__ import annotations

import dataclasses
import math

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
    rand,
    randn_like,
)
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator

__all__ = [
    "multiplicative_gaussian",
    "speckle",
    "gaussian_dropout",
    "alpha_dropout",
    "MultiplicativeGaussian",
    "Speckle",
    "GaussianDropoutNoise",
    "AlphaDropoutNoise",
    "dropout_std",
    "SELU_ALPHA",
    "SELU_SCALE",
]

SELU_ALPHA = 1.6732632423543772848170429916717
"""SELU's α (Klambauer et al. 2017), as ``torch.nn.SELU``."""
SELU_SCALE = 1.0507009873554804934193349852946
"""SELU's λ (Klambauer et al. 2017), as ``torch.nn.SELU``."""

# Alpha dropout sets dropped units to SELU's negative saturation value −λα so the activations keep
# zero mean and unit variance.
_ALPHA_PRIME = -SELU_ALPHA * SELU_SCALE


def multiplicative_gaussian(
    x: Tensor,
    std: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Multiplicative Gaussian noise, also called speckle: x̃ = x·(1 + std·ε) = x + x·std·ε.

    The noise has mean 1 and standard deviation ``std``, so E[x̃] = x. Hendrycks & Dietterich's speckle
    corruption is this with ``clip=(0, 1)``.

    Args:
        x: floating-point tensor.
        std: standard deviation >= 0 of the multiplier; a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std is negative, NaN or infinite.

    >>> y = multiplicative_gaussian(torch.zeros(3), 0.5, generator=torch.Generator().manual_seed(0))
    >>> bool((y == 0).all())  # zero stays zero: the noise scales with the signal
    True
    """
    check_input(x, kind="multiplicative_gaussian")
    std = check_main_strength(std, kind="multiplicative_gaussian", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    return _times_one_plus_noise(x, std, clip=clip, mask=mask, generator=generator)


def _times_one_plus_noise(
    x: Tensor, std: Strength, *, clip: Clip, mask: Tensor | None, generator: NoiseGenerator | None
) -> Tensor:
    noisy = randn_like(x, generator).mul_(std).add_(1.0).mul_(x)
    return finish(noisy, x, mask=mask, clip=clip)


speckle = multiplicative_gaussian


def dropout_std(rate: Strength) -> Strength:
    """σ = √(rate / (1 − rate)): the multiplicative-noise std that matches dropout's variance at ``rate``."""
    if isinstance(rate, Tensor):
        return torch.sqrt(rate / (1.0 - rate))
    return math.sqrt(rate / (1.0 - rate))


def gaussian_dropout(
    x: Tensor,
    rate: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Gaussian dropout (Srivastava et al. 2014; Keras ``GaussianDropout``): x̃ = x·(1 + σε).

    σ = √(rate / (1 − rate)), the standard deviation that matches the variance of dropout at that
    rate; the multiplier has mean 1. ``rate`` must be in [0, 1).

    Args:
        x: floating-point tensor.
        rate: in [0, 1); a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: rate is outside [0, 1).

    >>> gaussian_dropout(torch.ones(3), 0.0).tolist()
    [1.0, 1.0, 1.0]
    """
    check_input(x, kind="gaussian_dropout")
    rate = check_main_strength(rate, kind="gaussian_dropout", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(rate, 0.0):
        return x
    return _times_one_plus_noise(x, dropout_std(rate), clip=clip, mask=mask, generator=generator)


def alpha_dropout(
    x: Tensor,
    rate: Strength,
    *,
    noise_shape: tuple[int, ...] | None = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Alpha dropout (Klambauer et al. 2017) with the parametrization of Keras 3 ``AlphaDropout``.

    Each unit is kept with probability 1 − rate, else set to α′ = −λα (SELU's saturation); then
    x̃ = a·x′ + b with a = ((1 − rate)(1 + rate·α′²))^(−1/2) and b = −a·α′·rate, which keeps zero
    mean and unit variance for standardized SELU activations. ``noise_shape`` (broadcastable to x)
    shares one keep/drop draw along dimensions of size 1, as in Keras.

    Args:
        x: floating-point tensor.
        rate: in [0, 1); a float or a tensor of shape [batch].
        noise_shape: shape broadcastable to x; dimensions of 1 share one draw.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: rate is outside [0, 1), or noise_shape does not broadcast to x.

    >>> alpha_dropout(torch.ones(2, 3), 0.2, noise_shape=(2, 1), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3])
    """
    check_input(x, kind="alpha_dropout")
    rate = check_main_strength(rate, kind="alpha_dropout", x=x)
    mask, generator = check_mask(mask, x), check_generator(generator, x)
    shape = x.shape if noise_shape is None else torch.Size(noise_shape)
    try:
        if torch.broadcast_shapes(shape, x.shape) != x.shape:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"noise_shape={noise_shape!r} must broadcast to x's shape {list(x.shape)}") from None
    if is_identity(rate, 0.0):
        return x
    kept = rand(shape, generator, dtype=torch.float32, device=x.device) >= rate
    a = ((1.0 - rate) * (1.0 + rate * _ALPHA_PRIME**2)) ** -0.5
    b = -a * _ALPHA_PRIME * rate
    dtype = draw_dtype(x)
    noisy = torch.where(kept, x.to(dtype), torch.tensor(_ALPHA_PRIME, dtype=dtype, device=x.device))
    return finish(noisy.mul_(a).add_(b), x, mask=mask, clip=None)


@dataclasses.dataclass(frozen=True)
class MultiplicativeGaussian(NoiseKind, kind="multiplicative_gaussian"):
    """Config of :func:`multiplicative_gaussian`: x·(1 + std·ε).

    Fields: the parameters of :func:`multiplicative_gaussian` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`multiplicative_gaussian`, when the config is made (a schedule: by its range).

    >>> noise = MultiplicativeGaussian(std=0.1)
    >>> noise(torch.ones(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.ones(2, 3).shape
    True
    """

    std: float | Schedule | Tensor = 0.1
    clip: Clip = None

    function = staticmethod(multiplicative_gaussian)


Speckle = MultiplicativeGaussian


@dataclasses.dataclass(frozen=True)
class GaussianDropoutNoise(NoiseKind, kind="gaussian_dropout"):
    """Config of :func:`gaussian_dropout`: x·(1 + σε), σ = √(rate/(1−rate)).

    Fields: the parameters of :func:`gaussian_dropout` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`gaussian_dropout`, when the config is made (a schedule: by its range).

    >>> noise = GaussianDropoutNoise(rate=0.2)
    >>> noise(torch.ones(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.ones(2, 3).shape
    True
    """

    rate: float | Schedule | Tensor = 0.1
    clip: Clip = None

    function = staticmethod(gaussian_dropout)


@dataclasses.dataclass(frozen=True)
class AlphaDropoutNoise(NoiseKind, kind="alpha_dropout"):
    """Config of :func:`alpha_dropout` (Keras 3 semantics).

    Fields: the parameters of :func:`alpha_dropout` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`alpha_dropout`, when the config is made (a schedule: by its range).

    >>> noise = AlphaDropoutNoise(rate=0.1)
    >>> noise(torch.ones(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.ones(2, 3).shape
    True
    """

    rate: float | Schedule | Tensor = 0.1
    noise_shape: tuple[int, ...] | None = None

    function = staticmethod(alpha_dropout)
