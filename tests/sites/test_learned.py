import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisereg.layers import noise_enabled
from noisereg.noise.base import randn
from noisereg.seeding import noise_generator
from noisereg.sites import describe
from noisereg.sites.learned import PNI, NoisyLinear

X = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))


def test_noisy_linear_is_factorised_gaussian_and_eval_uses_the_means():
    layer = NoisyLinear(6, 3, sigma0=0.5, seed=11)
    bound, sigma = 1 / math.sqrt(6), 0.5 / math.sqrt(6)
    assert bool((layer.weight_mu.abs() <= bound).all()) and bool((layer.weight_sigma == sigma).all())
    out = layer(X)
    g = noise_generator(11)
    f = lambda z: z.sign() * z.abs().sqrt()  # noqa: E731
    draw = lambda n: randn((n,), g, dtype=torch.float32, device=torch.device("cpu"))  # noqa: E731
    eps_in, eps_out = f(draw(6)), f(draw(3))
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(eps_out, eps_in)
    bias = layer.bias_mu + layer.bias_sigma * eps_out
    assert torch.allclose(out, F.linear(X, weight, bias), atol=1e-6)
    assert torch.equal(layer.eval()(X), F.linear(X, layer.weight_mu, layer.bias_mu))
    assert set(layer.state_dict()) == {"weight_mu", "weight_sigma", "bias_mu", "bias_sigma", "_extra_state"}


def test_noisy_linear_learns_sigma_and_resamples_as_asked():
    layer = NoisyLinear(6, 3, seed=0)
    layer(X).sum().backward()
    assert layer.weight_sigma.grad is not None and bool(layer.weight_sigma.grad.any())
    manual = NoisyLinear(6, 3, resample="manual", seed=0)
    first, second = manual(X), manual(X)
    assert torch.equal(first, second)
    manual.reset_noise()
    assert not torch.equal(manual(X), first)
    per_forward = NoisyLinear(6, 3, seed=0)
    assert not torch.equal(per_forward(X), per_forward(X))


def test_noisy_linear_from_linear_and_errors():
    linear = nn.Linear(6, 3)
    layer = NoisyLinear.from_linear(linear, sigma0=0.1, seed=0)
    assert torch.equal(layer.eval()(X), linear(X))
    with noise_enabled(nn.Sequential(layer), True):
        assert not torch.equal(layer(X), linear(X))
    with pytest.raises(ValueError, match="sigma0=0"):
        NoisyLinear(6, 3, sigma0=0)
    with pytest.raises(ValueError, match="resample='sometimes'"):
        NoisyLinear(6, 3, resample="sometimes")
    with pytest.raises(TypeError, match="nn.Linear"):
        NoisyLinear.from_linear(nn.Conv1d(1, 1, 1))


def test_pni_adds_scaled_weight_noise_with_learnable_alpha():
    conv = nn.Conv2d(2, 3, 3)
    x = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    layer = PNI(conv, seed=4)
    assert layer.alpha.item() == 0.25
    out = layer(x)
    eta = randn(conv.weight.shape, noise_generator(4), dtype=conv.weight.dtype, device=conv.weight.device)
    noisy = conv.weight + 0.25 * conv.weight.detach().std() * eta
    assert torch.allclose(out, F.conv2d(x, noisy, conv.bias), atol=1e-6)
    out.sum().backward()
    assert layer.alpha.grad is not None and conv.weight.grad is not None
    assert torch.equal(layer.eval()(x), conv(x))
    model = nn.Sequential(layer)
    assert [(e.site, e.where, e.strength) for e in describe(model)] == [("module", "'0'", 0.25)]
    assert set(model.state_dict()) == {"0.alpha", "0.module.weight", "0.module.bias", "0._extra_state"}
    with pytest.raises(ValueError, match="floating parameter name='kernel'"):
        PNI(conv, name="kernel")
