"""Property tests over shapes, dtypes and strengths."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisereg import noise

shapes = st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple)
stds = st.floats(0.0, 50.0, allow_nan=False)
settings.register_profile("noisereg", max_examples=40, deadline=None)
settings.load_profile("noisereg")


@given(shape=shapes, std=stds, seed=st.integers(0, 2**31))
def test_gaussian_is_input_plus_scaled_unit_draw(shape, std, seed):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = noise.gaussian(x, std, generator=torch.Generator().manual_seed(seed + 1))
    unit = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    assert y.shape == x.shape
    if std == 0:
        assert y is x
    else:
        torch.testing.assert_close(y, x + std * unit, rtol=1e-12, atol=1e-12)


@given(shape=shapes, amount=st.floats(0.0, 1.0), seed=st.integers(0, 2**31))
def test_impulse_values_are_input_low_or_high(shape, amount, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1
    y = noise.impulse(x, amount, generator=torch.Generator().manual_seed(seed))
    assert bool(((y == x) | (y == 0.0) | (y == 1.0)).all())
    if amount == 1.0:
        assert bool(((y == 0.0) | (y == 1.0)).all())


@given(shape=shapes, std=stds, low=st.floats(-3, 0), width=st.floats(0, 3))
def test_clip_always_holds(shape, std, low, width):
    x = torch.randn(shape)
    y = noise.gaussian(x, std, clip=(low, low + width), generator=torch.Generator().manual_seed(0))
    if std > 0:
        assert y.min() >= low and y.max() <= low + width


@given(shape=shapes, rate=st.floats(0.0, 0.95), seed=st.integers(0, 2**31))
def test_gaussian_dropout_keeps_zeros(shape, rate, seed):
    x = torch.zeros(shape)
    assert torch.equal(noise.gaussian_dropout(x, rate, generator=torch.Generator().manual_seed(seed)), x)
