"""Target noise at the engine's targets site: the sites layer's label noise on probability rows."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisereg.sites import LabelFlip, flip_labels


def _one_hot(n=2000, classes=5, seed=0):
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    return labels, F.one_hot(labels, classes).float()


def test_zero_strength_returns_the_input_itself():
    _, q = _one_hot(10)
    assert flip_labels(q, 0.0) is q
    assert LabelFlip(rate=0.0).is_off()


@pytest.mark.parametrize("pattern", ["symmetric", "uniform"])
def test_flip_rate_is_realized(pattern):
    labels, q = _one_hot(20000, classes=4)
    flipped = LabelFlip(0.3, pattern=pattern)(q, generator=torch.Generator().manual_seed(2))
    assert set(flipped.unique().tolist()) == {0.0, 1.0}
    changed = (flipped.argmax(1) != labels).double()
    expected = 0.3 if pattern == "symmetric" else 0.3 * 3 / 4
    assert abs(changed.mean().item() - expected) < 6 * math.sqrt(expected * (1 - expected) / changed.numel())


def test_per_row_rates_broadcast_along_dim_0():
    _, q = _one_hot(3000, classes=3)
    stack = q.view(2, 1500, 3)
    flipped = flip_labels(stack, torch.tensor([0.0, 1.0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(flipped[0], stack[0])
    assert (flipped[1].argmax(-1) != stack[1].argmax(-1)).all()


def test_an_unknown_pattern_is_refused():
    with pytest.raises(ValueError, match="'pairs'"):
        LabelFlip(0.1, pattern="pairs")
    with pytest.raises(ValueError, match="'pairs'"):
        flip_labels(_one_hot(4)[1], 0.1, pattern="pairs")
