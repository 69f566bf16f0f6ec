"""Noise for signals and images: strength set by SNR, 1/f^β colored noise, spatially correlated noise."""

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
    add_normal,
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

__all__ = ["snr_gaussian", "colored", "spatial", "SNRGaussian", "Colored", "Spatial"]


def _check_batched(x: Tensor, *, kind: str, dims: int) -> None:
    if x.dim() < dims:
        raise ValueError(
            f"{kind} noise needs x with at least {dims} dimensions ([batch, ...]), got shape "
            f"{list(x.shape)}; for a single sample pass x.unsqueeze(0)"
        )


def snr_gaussian(
    x: Tensor,
    snr_db: Strength,
    *,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Gaussian noise at a target signal-to-noise ratio, measured per sample.

    For each sample i (dim 0): P_i = mean of x_i² over its non-batch positions that are not masked,
    σ_i = √P_i / 10^(snr_db / 20) (so 10·log10(P_i / σ_i²) = snr_db), x̃_i = x_i + σ_i·ε.
    As audiomentations' ``AddGaussianSNR`` with a fixed SNR. ``snr_db`` may be negative; ``inf``
    means no noise. A silent sample (P_i = 0) gets no noise.

    Args:
        x: floating-point tensor.
        snr_db: the target SNR in decibels (any real, inf for no noise); a float or a tensor of shape [batch].
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: snr_db is NaN, or x has no batch dimension.

    >>> snr_gaussian(torch.ones(2, 8), float("inf")).shape
    torch.Size([2, 8])
    """
    check_input(x, kind="snr_gaussian")
    _check_batched(x, kind="snr_gaussian", dims=2)
    snr = check_main_strength(snr_db, kind="snr_gaussian", x=x)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(snr, math.inf):
        return x
    dims = tuple(range(1, x.dim()))
    # The noise level is a property of the signal, not a path for gradients.
    power_of = x.detach().to(draw_dtype(x))
    if mask is None:
        power = power_of.square().mean(dim=dims, keepdim=True)
    else:
        real = (~mask).expand(x.shape)
        count = real.sum(dim=dims, keepdim=True).clamp_(min=1)
        power = power_of.square().masked_fill_(~real, 0.0).sum(dim=dims, keepdim=True) / count
    try:  # 10^(-snr/20) as a float overflows below about -6165 dB (a tensor snr gives inf instead)
        gain = 10.0 ** (-snr / 20.0)
    except OverflowError:
        raise ValueError(f"snr_db={snr!r} is so low that the noise std overflows a float") from None
    std = power.sqrt_() * gain
    noisy = add_normal(x, std, generator)
    return finish(noisy, x, mask=mask, clip=clip)


def _filtered_white(x: Tensor, gain: Tensor, dims: tuple[int, ...], generator: NoiseGenerator | None) -> Tensor:
    """Unit-variance stationary Gaussian noise shaped like x, filtered by ``gain`` along ``dims``.

    White noise w is filtered circularly in the Fourier domain; for unit-variance w the output's
    variance is mean(|gain|²) over the full spectrum, which is divided out so every position has
    variance exactly 1 in expectation. ``gain`` is given on the rfftn half-spectrum.
    """
    sizes = [x.shape[d] for d in dims]
    white = randn_like(x, generator)
    spectrum = torch.fft.rfftn(white, dim=dims)
    del white
    spectrum.mul_(gain)
    # Power of the full (Hermitian) spectrum from the half one: every column of the last axis but the
    # first (and the Nyquist one for even sizes) stands for two conjugate columns.
    weight = torch.full((gain.shape[-1],), 2.0, dtype=gain.dtype, device=gain.device)
    weight[0] = 1.0
    if sizes[-1] % 2 == 0:
        weight[-1] = 1.0
    variance = (gain.square() * weight).sum() / math.prod(sizes)
    return torch.fft.irfftn(spectrum, s=sizes, dim=dims).div_(variance.sqrt())


def colored(
    x: Tensor,
    std: Strength,
    *,
    beta: float = 1.0,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Additive colored Gaussian noise with power spectrum ∝ 1/f^β along the last dimension.

    β = 0 white, 1 pink, 2 brown (red). White noise is filtered with amplitude f^(−β/2) (the zero
    frequency takes the lowest non-zero frequency's gain) and rescaled so that each position's
    expected variance is std²: x̃ = x + std·c, c stationary with Var(c_t) = 1. Drawn in the Fourier
    domain, so it allocates a spectrum beside the one draw.

    Args:
        x: floating-point tensor.
        std: standard deviation >= 0 of the noise at each position; a float or a tensor of shape [batch].
        beta: the spectral exponent β >= 0 (0 white, 1 pink, 2 brown).
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std or beta negative or not finite, or x is a scalar.

    >>> colored(torch.zeros(2, 16), 0.1, beta=1.0, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 16])
    """
    check_input(x, kind="colored")
    std = check_main_strength(std, kind="colored", x=x)
    beta = check_real(beta, "beta", low=0.0)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    if x.dim() == 0:
        raise ValueError("colored noise needs x with a last dimension to color along, got a scalar")
    n = x.shape[-1]
    dtype = draw_dtype(x)
    freq = torch.arange(n // 2 + 1, dtype=dtype, device=x.device)
    if n > 1:
        freq[0] = 1.0
    gain = freq.pow(-beta / 2.0)
    noise = _filtered_white(x, gain, (-1,), generator)
    return finish(noise.mul_(std).add_(x), x, mask=mask, clip=clip)


def spatial(
    x: Tensor,
    std: Strength,
    *,
    length: float = 2.0,
    clip: Clip = None,
    mask: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Spatially correlated Gaussian noise for images (over the last two dimensions).

    White noise is smoothed with a Gaussian kernel of standard deviation ``length`` pixels (circularly,
    in the Fourier domain: gain exp(−2π²·length²·(f_h² + f_w²))) and rescaled to variance std² at every
    pixel: x̃ = x + std·c. ``length=0`` gives white noise.

    Args:
        x: floating-point tensor.
        std: standard deviation >= 0 of the noise at each pixel; a float or a tensor of shape [batch].
        length: the smoothing kernel's standard deviation in pixels, >= 0.
        clip: optional (low, high) applied to the noisy output.
        mask: bool tensor broadcastable to x; True positions are left untouched.
        generator: a noisereg Stream (CPU) or torch.Generator on x's device; None: torch's global one.

    Raises:
        TypeError: x is not floating point; ValueError: std or length negative or not finite, or x has fewer than two dimensions.

    >>> spatial(torch.zeros(1, 3, 8, 8), 0.1, length=2.0, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 8, 8])
    """
    check_input(x, kind="spatial")
    _check_batched(x, kind="spatial", dims=2)
    std = check_main_strength(std, kind="spatial", x=x)
    length = check_real(length, "length", low=0.0)
    mask, clip, generator = check_mask(mask, x), check_clip(clip), check_generator(generator, x)
    if is_identity(std, 0.0):
        return x
    h, w = x.shape[-2], x.shape[-1]
    dtype = draw_dtype(x)
    fh = torch.fft.fftfreq(h, dtype=dtype, device=x.device)[:, None]
    fw = torch.fft.rfftfreq(w, dtype=dtype, device=x.device)[None, :]
    gain = torch.exp(-2.0 * math.pi**2 * length**2 * (fh.square() + fw.square()))
    noise = _filtered_white(x, gain, (-2, -1), generator)
    return finish(noise.mul_(std).add_(x), x, mask=mask, clip=clip)


@dataclasses.dataclass(frozen=True)
class SNRGaussian(NoiseKind, kind="snr_gaussian"):
    """Config of :func:`snr_gaussian`: Gaussian noise at ``snr_db`` decibels per sample.

    Fields: the parameters of :func:`snr_gaussian` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`snr_gaussian`, when the config is made (a schedule: by its range).

    >>> noise = SNRGaussian(snr_db=20.0)
    >>> noise(torch.ones(2, 3), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.ones(2, 3).shape
    True
    """

    snr_db: float | Schedule | Tensor = 20.0
    clip: Clip = None

    function = staticmethod(snr_gaussian)


@dataclasses.dataclass(frozen=True)
class Colored(NoiseKind, kind="colored"):
    """Config of :func:`colored`: 1/f^β noise of standard deviation ``std`` along the last dim.

    Fields: the parameters of :func:`colored` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`colored`, when the config is made (a schedule: by its range).

    >>> noise = Colored(std=0.1)
    >>> noise(torch.zeros(2, 8), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.zeros(2, 8).shape
    True
    """

    std: float | Schedule | Tensor = 0.1
    beta: float = 1.0
    clip: Clip = None

    function = staticmethod(colored)


@dataclasses.dataclass(frozen=True)
class Spatial(NoiseKind, kind="spatial"):
    """Config of :func:`spatial`: Gaussian-smoothed 2-D noise of standard deviation ``std``.

    Fields: the parameters of :func:`spatial` but ``x`` and ``generator``; any strength may also be a
    :class:`~noisereg.schedules.Schedule`, resolved at the step the config is called with.

    Raises:
        TypeError, ValueError: as :func:`spatial`, when the config is made (a schedule: by its range).

    >>> noise = Spatial(std=0.1)
    >>> noise(torch.zeros(1, 1, 4, 4), step=0, generator=torch.Generator().manual_seed(0)).shape == torch.zeros(1, 1, 4, 4).shape
    True
    """

    std: float | Schedule | Tensor = 0.1
    length: float = 2.0
    clip: Clip = None

    function = staticmethod(spatial)
