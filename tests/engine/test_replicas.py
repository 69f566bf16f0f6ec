"""Initial weights, layouts and gradient clipping of stacked replicas."""

from __future__ import annotations

import math

import pytest
import torch

from noisereg.engine import MLPSpec, build_module, initial_state_dict
from noisereg.engine.optim import clip_grad_norm
from noisereg.engine.replicas import StackedMLP
from noisereg.seeding import derive_seed


def test_default_init_is_torch_linears_own():
    spec = MLPSpec(3, (7, 5), 2, activation="elu")
    with torch.random.fork_rng():
        torch.manual_seed(derive_seed(11, "init"))
        module = build_module(spec)
    ours = initial_state_dict(spec, 11)
    assert list(ours) == list(module.state_dict())
    for key, value in module.state_dict().items():
        assert torch.equal(ours[key], value), key


@pytest.mark.parametrize(
    ("init", "std"),
    [("he", math.sqrt(2 / 400)), ("glorot", math.sqrt(2 / (400 + 300))), ("normal", 0.05)],
)
def test_other_inits_have_their_standard_deviation_and_zero_biases(init, std):
    state = initial_state_dict(MLPSpec(400, (300,), 1, init=init, init_std=0.05), seed=3)
    w = state["0.weight"].double().flatten()
    assert abs(w.std().item() - std) < 6 * std / math.sqrt(2 * w.numel())
    assert abs(w.mean().item()) < 6 * std / math.sqrt(w.numel())
    assert not state["0.bias"].any() and not state["2.bias"].any()


def test_torch_layout_round_trip_and_index():
    spec = MLPSpec(3, (4, 5), 2)
    model = StackedMLP(spec, 3, device="cpu", dtype=torch.float64)
    states = [initial_state_dict(spec, s) for s in range(3)]
    model.load_state(states)
    exported = model.export_state()
    for r in range(3):
        for key, value in states[r].items():
            assert torch.equal(exported[key][r], value.double())
    flat = torch.cat([v.reshape(3, -1) for v in exported.values()], dim=1)
    assert torch.equal(model.params[model.torch_index()], flat)
    assert model.params.numel() % 64 == 0 and not model.params[model.numel :].any()


def test_clipping_matches_torch_per_replica():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 6, generator=g, dtype=torch.float64) * s for s in (1.0, 0.01)]
    grads[0][1] *= 1e-3  # a replica under the threshold is left as it is
    blocks = [b.clone() for b in grads]
    clip_grad_norm(blocks, 0.5)
    for r in range(4):
        params = [torch.nn.Parameter(torch.zeros(6, dtype=torch.float64)) for _ in grads]
        for p, b in zip(params, grads):
            p.grad = b[r].clone()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        for p, b in zip(params, blocks):
            torch.testing.assert_close(b[r], p.grad, rtol=1e-14, atol=0)
    assert torch.equal(blocks[0][1], grads[0][1])
