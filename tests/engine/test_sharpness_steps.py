"""The engine's SAM step, filter-wise weight noise (RWP) and weight noise with increments (Anti-PGD,
perturbed GD) against plain torch computations of their formulas, one replica, full-batch SGD."""

from __future__ import annotations

import torch
from torch import nn

from noisereg.engine import FoldData, Group, MLPSpec, OptimSpec, Replica, SiteNoise, build_module, initial_state_dict
from noisereg.engine.train import train_chunk
from noisereg.noise import FilterGaussian, Gaussian, filter_gaussian
from noisereg.noise.base import randn
from noisereg.seeding import derive_seed, noise_generator

SPEC = MLPSpec(3, (6,), 2)
SEED = 4
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _fold() -> FoldData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return FoldData(x[:12], y[:12], x[12:], y[12:])


def _engine(optimizer: OptimSpec, sites: tuple[SiteNoise, ...] = (), epochs: int = 1) -> dict[str, torch.Tensor]:
    group = Group(SPEC, optimizer, "ce", epochs, 12, sites, (Replica(SEED),))
    state = train_chunk(group, [_fold()], [0]).state
    return {k: v[0] for k, v in state.items()}


def _loss(model: nn.Module) -> torch.Tensor:
    fold = _fold()
    return nn.functional.cross_entropy(model(fold.x_train), fold.y_train)


def _model() -> nn.Module:
    model = build_module(SPEC)
    model.load_state_dict(initial_state_dict(SPEC, SEED))
    return model


def _grads(model: nn.Module) -> list[torch.Tensor]:
    model.zero_grad()
    _loss(model).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_sam_step_is_the_gradient_at_the_ascent_point() -> None:
    """w' = w − η·∇L(w + ρ·g/‖g‖₂), g = ∇L(w), ‖g‖ over all parameters (Foret et al. 2021)."""
    lr, rho = 0.5, 0.2
    model = _model()
    g = _grads(model)
    norm = torch.sqrt(sum((t * t).sum() for t in g))
    with torch.no_grad():
        for p, t in zip(model.parameters(), g, strict=True):
            p.add_(rho * t / norm)
    g2 = _grads(model)
    expected = {k: v - lr * t for (k, v), t in zip(initial_state_dict(SPEC, SEED).items(), g2, strict=True)}
    got = _engine(OptimSpec("sgd", lr=lr, sam_rho=rho))
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], **TOL)
    plain = _engine(OptimSpec("sgd", lr=lr))
    assert not torch.allclose(plain["0.weight"], got["0.weight"])


def test_filter_wise_weight_noise_per_tensor() -> None:
    """RWP: the gradient at W_i + σ‖W_i‖ε_i (each weight tensor in its shape, ε from the site's stream)
    applied to the clean weights."""
    lr, sigma = 0.5, 0.3
    model = _model()
    generator = noise_generator(derive_seed(SEED, "noise", "weights", "layers=all", 0))
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.copy_(filter_gaussian(p.detach().clone(), sigma, generator=generator))
    g = _grads(model)
    expected = {k: v - lr * t for (k, v), t in zip(clean.items(), g, strict=True)}
    got = _engine(OptimSpec("sgd", lr=lr), (SiteNoise("weights", FilterGaussian(std=sigma)),))
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], **TOL)


def test_increments_in_the_engine() -> None:
    """Anti-PGD's weights are the default weight site's clean weights plus the last draw (w_t = z_t + ξ_t);
    biases equal; perturbed GD is another process. ξ_t is re-drawn here from the site's stream."""
    opt, sigma, epochs = OptimSpec("sgd", lr=0.3), 0.05, 4
    held = _engine(opt, (SiteNoise("weights", Gaussian(std=sigma)),), epochs)
    anti = _engine(opt, (SiteNoise("weights", Gaussian(std=sigma), increments="anticorrelated"),), epochs)
    pgd = _engine(opt, (SiteNoise("weights", Gaussian(std=sigma), increments="independent"),), epochs)
    generator = noise_generator(derive_seed(SEED, "noise", "weights", "layers=all", 0))
    sizes = [v.numel() for k, v in held.items() if k.endswith("weight")]
    # the site draws ε_t for all weight* parameters at once, one vector per step, in state-dict order
    eps = [randn((sum(sizes),), generator, dtype=torch.float32, device=torch.device("cpu")) for _ in range(epochs)]
    last = iter((sigma * eps[-1]).split(sizes))
    for k in held:
        if k.endswith("weight"):
            torch.testing.assert_close(anti[k], held[k] + next(last).view_as(held[k]), **TOL)
        else:
            torch.testing.assert_close(anti[k], held[k], **TOL)
    assert (pgd["0.weight"] - anti["0.weight"]).abs().max() > 1e-3
