"""NoisyTune: W + (u − ½)·λ·std(W), redrawn independently from the documented generators."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from noisereg import noisytune
from noisereg.seeding import derive_seed


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1), nn.LayerNorm(1))


def test_matches_an_independent_computation_of_the_formula() -> None:
    model = _model().double()
    before = copy.deepcopy(model)
    names = noisytune(model, 0.15, seed=3)
    params = dict(before.named_parameters())
    # the LayerNorm of one feature has one-element weight and bias: std undefined, left alone
    assert names == ["0.weight", "0.bias", "2.weight"]
    for name, new in model.named_parameters():
        old = params[name].detach()
        if name not in names:
            assert torch.equal(new, old)
            continue
        u = torch.rand(
            old.shape, generator=torch.Generator().manual_seed(derive_seed(3, "noisytune", name)), dtype=torch.float64
        )
        expected = old + (u - 0.5) * 0.15 * torch.std(old)
        assert torch.allclose(new.detach(), expected, rtol=0, atol=8 * torch.finfo(torch.float64).eps)


def test_noise_is_within_half_lambda_std_and_uses_the_whole_range() -> None:
    big = nn.Linear(300, 300)
    old = big.weight.detach().clone()
    noisytune(big, 0.2, seed=0)
    rel = (big.weight.detach() - old) / (0.2 * old.std())
    assert float(rel.abs().max()) <= 0.5
    # 90,000 uniforms in (-1/2, 1/2): the extremes lie within 1e-3 of the ends (miss probability ~e^-90)
    assert float(rel.max()) > 0.499 and float(rel.min()) < -0.499
    # the sample variance of U(-1/2, 1/2) is 1/12 with sd about 0.0745/sqrt(n) relative: 6 sd bound
    assert abs(float(rel.double().var()) * 12 - 1) < 6 * 0.894 / 300


def test_same_seed_same_weights_no_global_rng_and_zero_is_a_no_op() -> None:
    a, b = _model(), _model()
    state = torch.get_rng_state()
    noisytune(a, 0.15, seed=9)
    noisytune(b, 0.15, seed=9)
    assert torch.equal(state, torch.get_rng_state())
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c, clean = _model(), _model()
    assert noisytune(c, 0.0, seed=9) == []
    for p, q in zip(c.parameters(), clean.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="lam=-0.1"):
        noisytune(_model(), -0.1, seed=0)
    with pytest.raises(TypeError, match="model="):
        noisytune("net", 0.1, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed"):
        noisytune(_model(), 0.1, seed="x")  # type: ignore[arg-type]
