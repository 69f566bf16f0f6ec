"""Replica r's noise on slice r of a stack (engine/replica_slices.py): the one-pass Gaussian path draws
what each replica's own noise layer draws, with the same bookkeeping."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import vmap

from noisereg import noise, schedules
from noisereg.engine.replica_slices import Place
from noisereg.layers import NoiseLayer


def _layers(kinds: list[noise.NoiseKind | None]) -> list[list[NoiseLayer]]:
    return [[] if kind is None else [NoiseLayer(kind, seed=10 + r)] for r, kind in enumerate(kinds)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("kinds", "one_pass"),
    [
        ([noise.Gaussian(std=0.1), None, noise.Gaussian(std=0.3), noise.Gaussian(std=0.0)], True),
        # built-in schedules: one pass, at each layer's own step (the first reaches 0 at step 2: then off)
        ([noise.Gaussian(std=schedules.Linear(0.1, 0.0, 2)), None, noise.Gaussian(std=schedules.Annealed(0.3))], True),
        ([noise.Gaussian(std=lambda step: 0.1 / (1 + step)), None], False),  # an own callable: each layer called
        ([noise.Gaussian(std=0.1), noise.MultiplicativeGaussian(std=0.2)], False),  # another kind: each layer called
    ],
    ids=["constant", "schedules", "own-callable", "another-kind"],
)
def test_a_place_draws_what_each_replicas_layer_draws_alone(kinds, one_pass, dtype) -> None:
    layers = _layers(kinds)
    alone = copy.deepcopy(layers)
    place = Place(layers)
    x = torch.randn(len(kinds), 5, 7, dtype=dtype, requires_grad=True)
    assert place._one_pass(x) is one_pass
    for _ in range(3):  # the layers' steps and streams move on as a lone replica's do
        out = vmap(place)(x)
        for r, own in enumerate(alone):
            expected = x[r]
            for layer in own:
                expected = layer.train()(expected)
            assert torch.equal(out[r], expected), r
        grad = torch.randn_like(x)
        (gx,) = torch.autograd.grad(out, x, grad)
        torch.testing.assert_close(
            gx, grad * torch.stack([_slope(k, o, x[r]) for r, (k, o) in enumerate(zip(kinds, out, strict=True))])
        )
    for mine, theirs in zip(layers, alone, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert (a.applied, a.step) == (b.applied, b.step)
            assert a.generator(x.device).state_dict() == b.generator(x.device).state_dict()


def _slope(kind: noise.NoiseKind | None, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dx̃/dx of each kind: 1 for additive noise, x̃/x for multiplicative."""
    if isinstance(kind, noise.MultiplicativeGaussian):
        return (out / x).detach()
    return torch.ones_like(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_stack_laid_out_across_the_replicas_keeps_its_layout_and_draws_the_same(dtype) -> None:
    # vmap keeps the replica dimension where the model's operations put it (inside a convolution's
    # channels): the noisy values come back in that layout, each row what its layer draws alone
    kinds = [noise.Gaussian(std=0.1), None, noise.Gaussian(std=0.3), None, noise.Gaussian(std=0.0)]
    layers = _layers(kinds)
    alone = copy.deepcopy(layers)
    place = Place(layers)
    x = torch.randn(6, len(kinds), 7, dtype=dtype, requires_grad=True)  # replicas on dim 1
    for _ in range(2):
        out = vmap(place, in_dims=1, out_dims=1)(x)
        assert out.stride() == x.stride()
        for r, own in enumerate(alone):
            expected = x[:, r]
            for layer in own:
                expected = layer.train()(expected)
            assert torch.equal(out[:, r], expected), r
        grad = torch.randn_like(x)
        (gx,) = torch.autograd.grad(out, x, grad)
        assert torch.equal(gx, grad)
