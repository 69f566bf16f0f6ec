"""Distributional checks, each with a tolerance of six standard errors of its own estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisereg import noise
from tests.conftest import six_se_mean, six_se_var

N = 400_000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("std", [0.05, 1.0, 3.0])
def test_gaussian_mean_and_variance(std):
    x = torch.full((N,), 2.0, dtype=torch.float64)
    eps = noise.gaussian(x, std, generator=_gen()) - x
    assert (lambda d, b: d < b)(*six_se_mean(eps, 0.0))
    diff, bound = six_se_var(eps, std**2)
    assert diff < bound


def test_uniform_half_width_and_std_match():
    x = torch.zeros(N, dtype=torch.float64)
    eps = noise.Uniform(std=0.2)(x, generator=_gen())
    assert eps.abs().max() <= 0.2 * math.sqrt(3)
    diff, bound = six_se_var(eps, 0.04)
    assert diff < bound


def test_multiplicative_has_mean_one_and_std():
    x = torch.full((N,), -1.5, dtype=torch.float64)
    factor = noise.multiplicative_gaussian(x, 0.3, generator=_gen()) / x
    assert (lambda d, b: d < b)(*six_se_mean(factor, 1.0))
    diff, bound = six_se_var(factor, 0.09)
    assert diff < bound


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_gaussian_dropout_variance_is_keras(rate):
    x = torch.ones(N, dtype=torch.float64)
    factor = noise.gaussian_dropout(x, rate, generator=_gen())
    diff, bound = six_se_var(factor, rate / (1 - rate))
    assert diff < bound


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_alpha_dropout_keeps_zero_mean_unit_variance(rate):
    x = torch.randn(N, generator=_gen(1), dtype=torch.float64)
    y = noise.alpha_dropout(x, rate, generator=_gen())
    d, b = six_se_mean(y, 0.0)
    assert d < b
    d, b = six_se_var(y, 1.0)
    assert d < b


def test_alpha_dropout_support_is_affine_keep_or_saturation():
    rate = 0.25
    x = torch.randn(1000, dtype=torch.float64)
    y = noise.alpha_dropout(x, rate, generator=_gen())
    alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    b = -a * alpha_p * rate
    kept = torch.isclose(y, a * x + b, rtol=0, atol=1e-12)
    dropped = torch.isclose(y, torch.full_like(y, a * alpha_p + b), rtol=0, atol=1e-12)
    assert bool((kept | dropped).all())


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 20.0])
def test_snr_achieved_per_sample(snr_db):
    length = 20_000
    scales = torch.tensor([0.1, 1.0, 7.0], dtype=torch.float64)[:, None]
    x = torch.randn(3, length, generator=_gen(2), dtype=torch.float64) * scales
    eps = noise.snr_gaussian(x, snr_db, generator=_gen()) - x
    achieved = 10 * torch.log10(x.square().mean(1) / eps.square().mean(1))
    # The noise power estimate has relative standard error sqrt(2/n); in dB that is 10/ln(10)·sqrt(2/n).
    bound = 6 * 10 / math.log(10) * math.sqrt(2 / length)
    assert (achieved - snr_db).abs().max() < bound


def test_snr_ignores_masked_positions_in_the_power():
    x = torch.ones(2, 10_000, dtype=torch.float64)
    x[:, 5000:] = 100.0  # loud padding that must not count
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 5000:] = True
    eps = noise.snr_gaussian(x, 0.0, mask=mask, generator=_gen()) - x
    assert torch.equal(eps[:, 5000:], torch.zeros(2, 5000, dtype=torch.float64))
    d, b = six_se_var(eps[:, :5000], 1.0)
    assert d < b


@pytest.mark.parametrize("amount,salt", [(0.1, 0.5), (0.3, 0.2)])
def test_impulse_fraction_and_salt_ratio(amount, salt):
    x = torch.full((N,), 0.5)
    y = noise.impulse(x, amount, salt_vs_pepper=salt, generator=_gen())
    for value, p in ((1.0, amount * salt), (0.0, amount * (1 - salt))):
        count = (y == value).sum().item()
        assert abs(count - N * p) < 6 * math.sqrt(N * p * (1 - p))
    assert torch.equal(y[(y != 0) & (y != 1)], x[(y != 0) & (y != 1)])


@pytest.mark.parametrize("scale", [3.0, 60.0])
def test_shot_is_unbiased_with_poisson_variance(scale):
    x = torch.full((N,), 0.4, dtype=torch.float64)
    y = noise.shot(x, scale, generator=_gen())
    torch.testing.assert_close(y * scale, (y * scale).round(), rtol=0, atol=1e-9)  # whole photon counts
    d, b = six_se_mean(y, 0.4)
    assert d < b
    d, b = six_se_var(y, 0.4 / scale)
    assert d < b


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_colored_variance_and_spectral_slope(beta):
    rows, n = 400, 1024
    x = torch.zeros(rows, n, dtype=torch.float64)
    eps = noise.colored(x, 0.5, beta=beta, generator=_gen())
    d, b = six_se_var(eps[:, n // 2], 0.25)  # one position across independent rows
    assert d < b
    power = torch.fft.rfft(eps, dim=-1).abs().square().mean(0)[1:].numpy()
    freq = np.arange(1, n // 2 + 1)
    slope = np.polyfit(np.log(freq), np.log(power), 1)[0]
    # 400 averaged periodograms over ~500 log-spaced-weighted bins pin the slope to about ±0.02.
    assert abs(slope + beta) < 0.1


def test_colored_white_equals_gaussian_draw():
    x = torch.zeros(8, 64, dtype=torch.float64)
    white = noise.colored(x, 1.0, beta=0.0, generator=_gen(4))
    plain = noise.gaussian(x, 1.0, generator=_gen(4))
    torch.testing.assert_close(white, plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [0.0, 1.0, 3.0])
def test_spatial_variance_and_neighbour_correlation(length):
    x = torch.zeros(200, 32, 32, dtype=torch.float64)
    eps = noise.spatial(x, 0.5, length=length, generator=_gen())
    d, b = six_se_var(eps[:, 16, 16], 0.25)
    assert d < b
    # Exact lag-1 correlation of the circular process: Σ G² cos(2πf) / Σ G² over the full spectrum.
    f = np.fft.fftfreq(32)
    g2 = np.exp(-4 * np.pi**2 * length**2 * (f[:, None] ** 2 + f[None, :] ** 2))
    rho = float((g2 * np.cos(2 * np.pi * f)[None, :]).sum() / g2.sum())
    a, b2 = eps[:, :, :-1].flatten(), eps[:, :, 1:].flatten()
    observed = float(torch.corrcoef(torch.stack([a, b2]))[0, 1])
    # Neighbouring pairs are dependent, so use the effective count of 200 independent images × 32 rows.
    assert abs(observed - rho) < 6 / math.sqrt(200 * 32)
