import math

import pytest
import torch

from noisereg.schedules import Linear
from noisereg.sites.noisy_activations import (
    NoisyHardSigmoid,
    NoisyHardTanh,
    SaturationNoise,
    noisy_hard_activation,
)

X = torch.linspace(-4, 4, 81)


@pytest.mark.parametrize(("module", "linear_region"), [(NoisyHardTanh, 1.0), (NoisyHardSigmoid, 2.0)])
def test_no_noise_where_the_unit_is_not_saturated(module, linear_region):
    layer = module(seed=0)
    out = layer(X)
    inside = X.abs() < linear_region
    h = torch.nn.functional.hardtanh(X) if module is NoisyHardTanh else (X / 4 + 0.5).clamp(0, 1)
    assert torch.allclose(out[inside], h[inside], atol=1e-6)
    assert not torch.allclose(out[~inside], layer.eval()(X)[~inside])


def test_formula_direction_and_expectation_in_eval():
    alpha, c = 1.15, 0.5
    g = torch.Generator().manual_seed(3)
    out = noisy_hard_activation(X, c, alpha=alpha, generator=g)
    xi = torch.randn(X.shape, generator=torch.Generator().manual_seed(3)).abs()
    h, u = X.clamp(-1, 1), X
    sigma = c * (torch.sigmoid(h - u) - 0.5) ** 2
    expected = alpha * h + (1 - alpha) * u + torch.sign(X) * sigma * xi  # d(x) = sgn(x) for alpha > 1
    assert torch.allclose(out, expected, atol=1e-6)
    mean = noisy_hard_activation(X, c, alpha=alpha, expected=True)
    assert torch.allclose(mean, alpha * h + (1 - alpha) * u + torch.sign(X) * sigma * math.sqrt(2 / math.pi))
    gauss = NoisyHardTanh(half_normal=False).eval()
    assert torch.allclose(gauss(X), alpha * h + (1 - alpha) * u)


def test_p_is_learned_and_c_follows_a_schedule():
    layer = NoisyHardTanh(c=Linear(0.0, 1.0, steps=4), num_features=81, seed=0)
    first = layer(X)
    assert torch.equal(first, noisy_hard_activation(X, 0.0, expected=True))  # c = 0 at step 0: no noise
    layer(X).sum().backward()
    assert layer.p.shape == (81,) and bool(layer.p.grad.abs().sum() > 0)
    assert layer.current_strength() == 0.5  # step 2
    with pytest.raises(ValueError, match="alpha=1"):
        SaturationNoise(alpha=1.0)
    with pytest.raises(ValueError, match="activation='relu'"):
        noisy_hard_activation(X, 0.5, activation="relu")
