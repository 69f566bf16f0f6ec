"""Hutchinson's Hessian-trace estimator against Hessians computed in full."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisereg.curvature import hessian_trace


def test_diagonal_hessian_is_exact() -> None:
    # v_i^2 = 1 for Rademacher v, so v^T D v = tr(D) for every draw: exact, zero spread.
    d = torch.tensor([0.5, -2.0, 3.0, 7.25], dtype=torch.float64)
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    est = hessian_trace(lambda: 0.5 * (d * x * x).sum(), [x], samples=8, seed=3)
    assert est.estimate == pytest.approx(float(d.sum()), rel=1e-12)
    assert est.stderr == pytest.approx(0.0, abs=1e-12)


def test_small_network_matches_the_full_hessian_within_its_standard_error() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        chunks, at = [], 0
        for shape in shapes:
            n = int(torch.Size(shape).numel())
            chunks.append(vector[at : at + n].reshape(shape))
            at += n
        out = torch.func.functional_call(
            model, dict(zip([n for n, _ in model.named_parameters()], chunks, strict=True)), (x,)
        )
        return F.mse_loss(out, y)

    exact = float(torch.autograd.functional.hessian(loss_of, flat).diagonal().sum())
    est = hessian_trace(lambda: F.mse_loss(model(x), y), model, samples=400, seed=1)
    assert est.stderr > 0
    # A fixed seed makes this deterministic; 5 standard errors is a 1-in-3.5-million miss for a normal mean.
    assert abs(est.estimate - exact) < 5 * est.stderr


def test_same_seed_same_estimate_and_no_global_rng_use() -> None:
    model = nn.Linear(5, 1)
    x = torch.randn(8, 5)
    state = torch.get_rng_state()
    a = hessian_trace(lambda: model(x).pow(2).mean() + model.weight.pow(4).sum(), model, samples=5, seed=9)
    b = hessian_trace(lambda: model(x).pow(2).mean() + model.weight.pow(4).sum(), model, samples=5, seed=9)
    assert a == b
    assert torch.equal(state, torch.get_rng_state())


def test_linear_loss_has_zero_trace() -> None:
    w = torch.ones(3, requires_grad=True)
    assert hessian_trace(lambda: (2 * w).sum(), [w], samples=2).estimate == 0.0


def test_bad_arguments_name_themselves() -> None:
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="samples=1"):
        hessian_trace(lambda: w.pow(2).sum(), [w], samples=1)
    with pytest.raises(TypeError, match="loss="):
        hessian_trace("loss", [w])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"params\[0\] does not require grad"):
        hessian_trace(lambda: w.pow(2).sum(), [torch.ones(3)])
    with pytest.raises(ValueError, match="expected a scalar tensor"):
        hessian_trace(lambda: w.pow(2), [w])
    with pytest.raises(ValueError, match="no tensor that requires grad"):
        hessian_trace(lambda: w.pow(2).sum(), [])
