"""The contract every noise kind satisfies (STYLE: one suite for every implementation)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from noisereg.layers import NoiseLayer
from tests.noise.cases import CASES, IDS, Case

# CUDA joins the device-dependent checks wherever a GPU is present; CI runs them on the CPU.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _input(case: Case, shape=(4, 6, 16), dtype=torch.float32, seed=0, device="cpu") -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x.abs() if case.positive_input else x
    return x.to(dtype=dtype, device=device)


def _gen(seed: int = 1, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.fixture(params=CASES, ids=IDS)
def case(request) -> Case:
    return request.param


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_shape_dtype_device_kept(case, dtype, device):
    x = _input(case, dtype=dtype, device=device)
    y = case.make(case.strength)(x, generator=_gen(device=device))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()
    assert not torch.equal(y, x)


def test_identity_strength_returns_input_itself(case):
    x = _input(case)
    assert case.make(case.identity)(x, generator=_gen()) is x


def test_eval_mode_returns_input_itself(case):
    layer = NoiseLayer(case.make(case.strength), seed=0).eval()
    x = _input(case)
    assert layer(x) is x


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_noise(case, device):
    x = _input(case, device=device)
    kind = case.make(case.strength)
    a = kind(x, generator=_gen(7, device))
    b = kind(x, generator=_gen(7, device))
    c = kind(x, generator=_gen(8, device))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seeded_layer_leaves_global_rng_alone(case):
    state = torch.get_rng_state()
    layer = NoiseLayer(case.make(case.strength), seed=3).train()
    first = layer(_input(case))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(NoiseLayer(case.make(case.strength), seed=3).train()(_input(case)), first)


@pytest.mark.parametrize("case", [c for c in CASES if c.linear], ids=[c.name for c in CASES if c.linear])
def test_strength_scales_unit_noise(case):
    x = _input(case, dtype=torch.float64)
    unit = case.make(1.0)(x, generator=_gen(5)) - x
    scaled = case.make(0.37)(x, generator=_gen(5)) - x
    torch.testing.assert_close(scaled, 0.37 * unit, rtol=1e-12, atol=1e-12)


def test_per_sample_strength_matches_scalar_rows(case):
    x = _input(case, dtype=torch.float64)
    other = case.strength * 2 if case.identity == 0.0 else case.strength + 7.0
    strengths = torch.tensor([case.strength, other, case.identity, case.strength], dtype=torch.float64)
    per_sample = case.make(strengths)(x, generator=_gen(5))
    scalar = case.make(case.strength)(x, generator=_gen(5))
    assert torch.equal(per_sample[0], scalar[0])
    assert torch.equal(per_sample[2], x[2]) or case.name in ("snr", "shot", "colored", "spatial")
    assert not torch.equal(per_sample[1], scalar[1])


def test_masked_positions_untouched(case):
    x = _input(case)
    mask = torch.zeros(x.shape, dtype=torch.bool)
    mask[:, :2] = True
    mask[0] = True
    y = case.make(case.strength)(x, generator=_gen(), mask=mask)
    assert torch.equal(y[mask], x[mask])
    assert not torch.equal(y[~mask], x[~mask])


def test_mask_broadcasts(case):
    x = _input(case)
    mask = torch.zeros(x.shape[0], 1, 1, dtype=torch.bool)
    mask[1] = True
    y = case.make(case.strength)(x, generator=_gen(), mask=mask)
    assert torch.equal(y[1], x[1])


@pytest.mark.parametrize("case", [c for c in CASES if c.clip], ids=[c.name for c in CASES if c.clip])
def test_clip_respected(case):
    x = _input(case).clamp(-0.5, 0.5).abs() if case.positive_input else _input(case).clamp(-0.5, 0.5)
    kind = dataclasses.replace(case.make(case.strength * 3 if case.identity == 0 else case.strength), clip=(-0.5, 0.5))
    y = kind(x, generator=_gen())
    assert y.min() >= -0.5 and y.max() <= 0.5


def test_gradient_flows_to_input(case):
    x = _input(case, dtype=torch.float64).requires_grad_()
    y = case.make(case.strength)(x, generator=_gen())
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_works_under_vmap(case):
    x = _input(case, shape=(3, 4, 6, 16))
    kind = case.make(case.strength)
    y = torch.func.vmap(lambda xi: kind(xi), randomness="different")(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    assert not torch.equal(y[0], y[1])


def test_works_under_torch_compile(case):
    kind = case.make(case.strength)
    compiled = torch.compile(lambda x, g: kind(x, generator=g), backend="aot_eager")
    x = _input(case)
    y = compiled(x, _gen(9))
    assert torch.equal(y, kind(x, generator=_gen(9)))
