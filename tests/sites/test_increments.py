"""Weight noise with increments (Anti-PGD, perturbed GD) against the formulas, draw for draw.

The increments sites draw from the same stream as the default weight site (``increments="none"``), so
the held δ_t of a default site attached with the same seed is the ξ_t of the increments site.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import noisereg
from noisereg.noise import FilterGaussian, Gaussian

TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32 sums of a few terms


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 4, generator=g), torch.randn(16, 3, generator=g)


def _train(increments: str, steps: int, lr: float, noise: object = None) -> tuple[nn.Module, list[torch.Tensor]]:
    """SGD on a Linear layer; returns the model and, for increments="none", the δ_t it drew each step."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    handle = noisereg.attach(model, noise or Gaussian(std=0.1), at="weights", increments=increments, seed=7)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = _data()
    drawn = []
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if increments == "none":
            drawn.append(handle._placements[0].noise_state()["held"].clone())
    handle.remove()
    return model, drawn


@pytest.mark.parametrize(("noise", "counts"), [(Gaussian(std=0.1), (1, 2, 5)), (FilterGaussian(std=0.3), (1,))])
def test_formulas_at_lr_zero(noise: object, counts: tuple[int, ...]) -> None:
    """With no gradient step the weights are W_0 + ξ_t (anticorrelated) or W_0 + Σ_{k≤t} ξ_k (independent).

    (ξ_t of filter-wise noise scales with the norms of the weights it is drawn at, which the walk has
    moved after one step: there the default site's δ_t is another number from the same ε.)"""
    w0 = _train("none", 0, 0.0)[0].weight.detach().clone()
    for steps in counts:
        _, deltas = _train("none", steps, 0.0, noise)
        anti = _train("anticorrelated", steps, 0.0, noise)[0]
        pgd = _train("independent", steps, 0.0, noise)[0]
        torch.testing.assert_close(anti.weight.detach(), w0 + deltas[-1], **TOL)
        torch.testing.assert_close(pgd.weight.detach(), w0 + torch.stack(deltas).sum(0), **TOL)
        assert torch.equal(anti.bias, _train("none", 0, 0.0)[0].bias)  # biases take no noise by default


def test_anti_pgd_is_weight_noise_plus_the_last_draw() -> None:
    """Orvieto et al.'s identity: w_t = z_t + ξ_t, z_t the clean weights of the default weight site."""
    held, deltas = _train("none", 6, 0.05)
    anti, _ = _train("anticorrelated", 6, 0.05)
    # δ_t = noise(z_t) − z_t, ξ_t = noise(w_t) − w_t: the same ε, rounded at other weights
    torch.testing.assert_close(anti.weight.detach(), held.weight.detach() + deltas[-1], **TOL)
    torch.testing.assert_close(anti.bias.detach(), held.bias.detach(), **TOL)
    pgd, _ = _train("independent", 6, 0.05)
    assert (pgd.weight - anti.weight).abs().max() > 1e-3  # the random walk is another process


def test_eval_forward_and_zero_strength() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    handle = noisereg.attach(model, Gaussian(std=0.0), at="weights", increments="anticorrelated", seed=0)
    model.train()
    model(torch.zeros(2, 4))
    assert torch.equal(model.weight, before)  # σ = 0: ξ = 0, nothing added
    handle.remove()
    handle = noisereg.attach(model, Gaussian(std=0.1), at="weights", increments="independent", seed=0)
    model.eval()
    model(torch.zeros(2, 4))
    assert torch.equal(model.weight, before)  # eval forwards are not steps
    handle.remove()


def test_bad_options() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="increments='sometimes' must be one of"):
        noisereg.attach(model, Gaussian(std=0.1), at="weights", increments="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resample='step'"):
        noisereg.attach(model, Gaussian(std=0.1), at="weights", increments="anticorrelated", resample="manual")
    with pytest.raises(ValueError, match="does not apply to at='input'"):
        noisereg.attach(model, Gaussian(std=0.1), at="input", increments="anticorrelated")  # type: ignore[arg-type]
