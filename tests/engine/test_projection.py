"""Projected sampling of post-activation noise: the same joint distribution, wired as documented."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from noisereg import noise
from noisereg.engine import (
    FoldData,
    Group,
    MLPSpec,
    OptimSpec,
    Replica,
    SiteNoise,
    build_module,
    initial_state_dict,
    train_group,
)
from noisereg.engine.projection import projected_noise_gradient
from noisereg.noise.base import randn
from noisereg.seeding import derive_seed, noise_generator


def test_projected_draws_have_the_covariance_of_direct_sampling():
    """(u, s) = (‖w‖ξ, s(ξ, ζ)) has the covariance of (εw, Σ_b dz_b ε_b):
    Cov(u) = ‖w‖²I, Cov(s) = ‖dz‖²I, Cov(s, u_b) = dz_b·w."""
    g = torch.Generator().manual_seed(0)
    n, hidden, batch = 40000, 4, 3
    w = torch.randn(1, 1, hidden, generator=g, dtype=torch.float64)
    dz = torch.randn(1, 1, batch, generator=g, dtype=torch.float64)
    xi = torch.randn(n, 1, batch, generator=g, dtype=torch.float64)
    zeta = torch.randn(n, 1, hidden, generator=g, dtype=torch.float64)
    s = projected_noise_gradient(w.expand(n, -1, -1), dz.expand(n, -1, -1), xi, zeta)[:, 0]
    u = xi[:, 0] * w.norm()
    joint = torch.cat([u, s], dim=1)
    expected = torch.zeros(batch + hidden, batch + hidden, dtype=torch.float64)
    expected[:batch, :batch] = torch.eye(batch) * w.norm() ** 2
    expected[batch:, batch:] = torch.eye(hidden) * dz.norm() ** 2
    expected[batch:, :batch] = w[0, 0, :, None] * dz[0, 0, None, :]
    expected[:batch, batch:] = expected[batch:, :batch].T
    products = joint[:, :, None] * joint[:, None, :]
    error = (products.mean(0) - expected).abs()
    bound = 6 * products.std(0) / n**0.5
    assert (error < bound).all(), (error / bound).max()


def test_zero_output_weights_leave_the_whole_space():
    dz = torch.tensor([[[0.3, -0.4]]])
    zeta = torch.randn(1, 1, 5)
    s = projected_noise_gradient(torch.zeros(1, 1, 5), dz, torch.randn(1, 1, 2), zeta)
    torch.testing.assert_close(s, 0.5 * zeta)


def _setup(sampling="projected", std=0.3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 2, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).double()
    fold = FoldData(x[:6], y[:6], x[6:], y[6:])
    site = SiteNoise("after", noise.Gaussian(std=std), sampling=sampling)
    group = Group(MLPSpec(2, (5,), 1), OptimSpec("sgd", lr=1.0), "bce", 1, 8, (site,), (Replica(4),))
    return group, fold


def test_one_step_uses_the_projected_draws_as_documented():
    group, fold = _setup()
    result = train_group(group, [fold], dtype=torch.float64)
    model = build_module(group.model).double()
    model.load_state_dict(initial_state_dict(group.model, 4))
    gen = noise_generator(derive_seed(4, "noise", *group.stream_keys(0)))
    cpu = torch.device("cpu")
    xi, zeta = randn((1, 6), gen, dtype=torch.float64, device=cpu), randn((1, 5), gen, dtype=torch.float64, device=cpu)
    w = model[2].weight
    a = model[1](model[0](fold.x_train.double()))
    z = model[2](a)[:, 0] + (0.3 * w.norm() * xi[0]).detach()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, fold.y_train.double())
    loss.backward()
    dz = (torch.sigmoid(z) - fold.y_train.double()).detach() / 6
    extra = 0.3 * projected_noise_gradient(w.detach()[None], dz[None, None], xi[None], zeta[None])[0]
    with torch.no_grad():
        w.grad += extra
        for p in model.parameters():
            p -= p.grad
    for key, value in model.state_dict().items():
        torch.testing.assert_close(result.state_dict(0)[key], value, rtol=1e-12, atol=1e-13)


def test_zero_strength_is_no_noise_and_draws_matter():
    off = train_group(_setup(std=0.0)[0], [_setup()[1]], dtype=torch.float64)
    clean = train_group(dataclasses.replace(_setup()[0], sites=()), [_setup()[1]], dtype=torch.float64)
    noisy = train_group(_setup()[0], [_setup()[1]], dtype=torch.float64)
    assert torch.equal(off.weights["2.weight"], clean.weights["2.weight"])
    assert not torch.equal(noisy.weights["2.weight"], clean.weights["2.weight"])


@pytest.mark.parametrize(
    ("site", "model"),
    [
        (SiteNoise("before", noise.Gaussian(0.1), sampling="projected"), MLPSpec(2, (5,), 1)),
        (SiteNoise("after", noise.GaussianDropoutNoise(0.1), sampling="projected"), MLPSpec(2, (5,), 1)),
        (SiteNoise("after", noise.Gaussian(0.1, clip=(0, 1)), sampling="projected"), MLPSpec(2, (5,), 1)),
        (SiteNoise("after", noise.Gaussian(0.1), sampling="projected"), MLPSpec(2, (5, 4), 1)),
        (SiteNoise("after", noise.Gaussian(0.1), layers=(0,), sampling="projected"), MLPSpec(2, (5, 4), 1)),
        (SiteNoise("after", noise.Gaussian(0.1), sampling="projected"), MLPSpec(2, (5,), 3)),
    ],
)
def test_projected_sampling_is_refused_where_it_does_not_apply(site, model):
    loss = "ce" if model.out_features > 1 else "bce"
    with pytest.raises(ValueError, match="projected"):
        Group(model, OptimSpec(), loss, 1, 4, (site,), (Replica(0),))
