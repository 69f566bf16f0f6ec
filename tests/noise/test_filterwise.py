"""Filter-wise Gaussian noise (RWP) against an independent computation of its formula."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import noisereg
from noisereg.noise import FilterGaussian, filter_gaussian


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(4,), (3, 5), (2, 3, 4), (6, 2, 3, 3)]),
    std=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_same_generator_gives_the_formula(shape: tuple[int, ...], std: float, seed: int) -> None:
    """x̃_i = x_i + σ·‖x_i‖₂·ε_i with ε re-drawn from a generator of the same seed, per filter along dim 0."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    out = filter_gaussian(x, std, generator=torch.Generator().manual_seed(seed))
    eps = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    norms = torch.stack([row.pow(2).sum().sqrt() for row in x.reshape(shape[0], -1)])
    expected = x + eps * (std * norms).reshape((-1,) + (1,) * (len(shape) - 1))
    if std == 0.0:
        assert out is x
    else:
        # the same products in another order: a few ulps of float64
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_relative_size_is_the_same_in_every_filter() -> None:
    """Filters of very different norms get noise of the same relative size (moments, 6 standard errors)."""
    n = 20000
    x = torch.ones(3, n, dtype=torch.float64) * torch.tensor([[1e-3], [1.0], [1e3]], dtype=torch.float64)
    out = filter_gaussian(x, 0.5, generator=torch.Generator().manual_seed(0))
    rel = (out - x) / x.norm(dim=1, keepdim=True)  # ~ N(0, 0.5²) in every filter
    sd = rel.std(dim=1)
    # the sample sd of n normals has standard error σ/√(2(n−1))
    se = 0.5 / math.sqrt(2 * (n - 1))
    assert bool(((sd - 0.5).abs() < 6 * se).all()), sd


def test_zero_filter_and_bad_inputs() -> None:
    x = torch.zeros(2, 3)
    assert torch.equal(filter_gaussian(x, 1.0, generator=torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError, match="scalar"):
        filter_gaussian(torch.tensor(1.0), 0.1)
    with pytest.raises(ValueError, match="std"):
        FilterGaussian(std=-0.1)


def test_at_weights_is_rwp_one_gradient_at_the_perturbed_weights() -> None:
    """attach(..., at="weights"): the gradient is that of the loss at W + σ‖W_i‖ε, applied to the clean W."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    param = model.weight  # parametrize keeps this Parameter as the clean weight
    clean = param.detach().clone()
    handle = noisereg.attach(model, FilterGaussian(std=0.2), at="weights", seed=5)
    model.train()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    [place] = handle._placements
    noisy = clean + place.noise_state()["held"]
    w = noisy.clone().requires_grad_(True)
    nn.functional.mse_loss(x @ w.T + model.bias, y).backward()
    torch.testing.assert_close(param.grad, w.grad)
    # the perturbation is filter-wise: δ_i / ‖W_i‖ has the same law in each row; here: exact re-draw
    delta = place.noise_state()["held"]
    assert not torch.equal(delta, torch.zeros_like(delta))
    model.eval()
    assert torch.equal(model.weight, clean)
    handle.remove()
