"""SymNoise: every noised coordinate moves by exactly ±α/√(L·d), L the real tokens of its row."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from noisereg import SymNoise, attach
from noisereg.sites import neftune, symnoise


def test_values_are_exactly_plus_or_minus_alpha_over_sqrt_real_length_times_d() -> None:
    x = torch.zeros(2, 5, 8, dtype=torch.float64)
    pad = torch.zeros(2, 5, 1, dtype=torch.bool)
    pad[0, 3:] = True  # row 0: 3 real tokens; row 1: 5
    out = symnoise(x, 5.0, mask=pad, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out[0, 3:], torch.zeros(2, 8, dtype=torch.float64))
    for row, real in ((0, 3), (1, 5)):
        step = 5.0 / math.sqrt(real * 8)
        # one value up to float64 rounding of alpha * (1 / sqrt(L d))
        assert torch.allclose(
            out[row, :real].abs(), torch.full((real, 8), step, dtype=torch.float64), rtol=4e-16, atol=0
        )
        assert set(out[row, :real].sign().unique().tolist()) == {-1.0, 1.0}


def test_signs_are_an_independent_redraw_of_the_same_generator() -> None:
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    out = symnoise(x, 10.0, generator=torch.Generator().manual_seed(7))
    u = torch.rand(3 * 4, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64).reshape(3, 4, 6)
    expected = x + 10.0 / math.sqrt(4 * 6) * torch.where(u >= 0.5, 1.0, -1.0).to(torch.float64)
    assert torch.allclose(out, expected, rtol=0, atol=4 * torch.finfo(torch.float64).eps * float(expected.abs().max()))


def test_same_positions_as_neftune_and_off_at_zero() -> None:
    x = torch.zeros(1, 4, 3)
    a = symnoise(x, 5.0, generator=torch.Generator().manual_seed(0))
    b = neftune(x, 5.0, generator=torch.Generator().manual_seed(0))
    # NEFTune's uniform and SymNoise's sign come from the same uniform draw: sign(u - 1/2) agrees.
    assert torch.equal(a.sign(), b.sign())
    assert torch.equal(symnoise(x, 0.0), x)


def test_attach_at_embeddings_only_in_training_and_leaves_padding() -> None:
    emb = nn.Embedding(10, 4, padding_idx=0)
    ids = torch.tensor([[3, 4, 0, 0]])
    clean = emb(ids).detach()
    with attach(emb, SymNoise(alpha=4.0), at="embeddings", seed=1):
        emb.train()
        noisy = emb(ids).detach()
        emb.eval()
        assert torch.equal(emb(ids).detach(), clean)
    delta = noisy - clean
    assert torch.equal(delta[0, 2:], torch.zeros(2, 4))
    assert torch.allclose(delta[0, :2].abs(), torch.full((2, 4), 4.0 / math.sqrt(2 * 4)))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha"):
        SymNoise(alpha=-1.0)
    with pytest.raises(ValueError, match="length"):
        SymNoise(alpha=1.0, length="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symnoise expects"):
        symnoise(torch.zeros(4), 1.0)
