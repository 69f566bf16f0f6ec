"""Rademacher (±σ) noise against an independent redraw of its signs."""

from __future__ import annotations

import doctest

import pytest
import torch

from noisereg.noise import Rademacher, rademacher
from noisereg.noise.symmetric import rademacher as module_function


def test_signs_are_the_generators_uniforms_split_at_one_half() -> None:
    x = torch.randn(64, 7, dtype=torch.float64)
    out = rademacher(x, 0.25, generator=torch.Generator().manual_seed(11))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    expected = x + 0.25 * torch.where(u >= 0.5, 1.0, -1.0).to(torch.float64)
    assert torch.equal(out, expected)


def test_every_step_is_exactly_std_and_the_mean_is_zero_within_sampling_error() -> None:
    n = 200_000
    out = rademacher(torch.zeros(n), 0.5, generator=torch.Generator().manual_seed(2))
    assert set(out.unique().tolist()) == {-0.5, 0.5}
    # The sign mean has sd 1/sqrt(n); 6 sd is a miss of 2e-9 for a fixed seed that passes once.
    assert abs(float(out.double().mean()) / 0.5) < 6 / n**0.5


def test_per_sample_strength_mask_and_identity() -> None:
    x = torch.zeros(3, 4)
    std = torch.tensor([0.0, 1.0, 2.0])
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[:, 0] = True
    out = rademacher(x, std, mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0], torch.zeros(3))
    assert torch.equal(out[1:, 1:].abs(), std[1:, None].expand(2, 3))
    assert torch.equal(out[0], torch.zeros(4))
    assert rademacher(x, 0.0) is x
    assert Rademacher(std=0.3).is_off() is False and Rademacher(std=0.0).is_off()


def test_bad_strength_names_itself() -> None:
    with pytest.raises(ValueError, match="std"):
        rademacher(torch.zeros(2), -1.0)
    with pytest.raises(TypeError):
        rademacher(torch.zeros(2, dtype=torch.long), 1.0)


def test_doctests() -> None:
    import noisereg.noise.symmetric as mod  # noqa: PLC0415

    assert module_function is rademacher
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0
