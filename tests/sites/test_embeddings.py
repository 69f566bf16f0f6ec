import math

import pytest
import torch
from torch import nn

from noisereg.layers import NoiseLayer
from noisereg.noise import Gaussian
from noisereg.noise.base import rand
from noisereg.schedules import Linear
from noisereg.seeding import NoiseGenerator, derive_seed, noise_generator
from noisereg.sites import NEFTune, attach, neftune

from .models import SeqNet

D = 8


def _reference(x: torch.Tensor, alpha: float, real: torch.Tensor, generator: NoiseGenerator) -> torch.Tensor:
    """NEFTune written out: uniform(-1, 1) scaled per sequence by alpha / sqrt(L_i * d), padding kept."""
    u = rand(x.shape, generator, dtype=x.dtype, device=x.device).mul_(2.0).sub_(1.0)
    lengths = real.sum(dim=1).to(x.dtype)
    scale = (alpha / torch.sqrt(lengths * x.shape[-1])).reshape(-1, 1, 1)
    return torch.where(real.bool().unsqueeze(-1), u.mul_(scale).add_(x), x)


def test_neftune_scale_uses_real_length_and_padding_is_bitwise_unchanged():
    x = torch.randn(3, 6, D, generator=torch.Generator().manual_seed(0))
    real = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    out = neftune(x, 10.0, mask=~real.bool().unsqueeze(-1), generator=torch.Generator().manual_seed(5))
    expected = _reference(x, 10.0, real, torch.Generator().manual_seed(5))
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)
    assert torch.equal(out[~real.bool()], x[~real.bool()])
    # The largest perturbation of a sequence is close to its bound α/√(L·d), never above it.
    for i, length in enumerate(real.sum(1).tolist()):
        bound = 10.0 / math.sqrt(length * D)
        biggest = (out[i] - x[i]).abs().max().item()
        assert 0.8 * bound < biggest <= bound * (1 + 1e-6)


def test_neftune_without_mask_single_sequence_and_errors():
    x = torch.zeros(5, D)
    out = neftune(x, 5.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and (out.abs() <= 5.0 / math.sqrt(5 * D)).all()
    with pytest.raises(ValueError, match=r"\[batch, L, d\]"):
        neftune(torch.zeros(2, 3, 4, 5), 5.0)
    with pytest.raises(ValueError, match="alpha"):
        NEFTune(alpha=-1.0)
    with pytest.raises(TypeError, match="floating-point"):
        neftune(torch.zeros(2, 3, dtype=torch.long), 5.0)


def test_embedding_site_uses_padding_idx():
    model = SeqNet()
    ids = torch.tensor([[3, 4, 0, 0], [7, 1, 2, 9]])
    clean = model.emb(ids)
    attach(model, NEFTune(5.0), at="embeddings", seed=2)
    seen: list[torch.Tensor] = []
    model.emb.register_forward_hook(lambda m, a, out: seen.append(out))
    model(ids)
    real = (ids != 0).long()
    expected = _reference(clean, 5.0, real, noise_generator(derive_seed(2, "embeddings", "emb")))
    assert torch.allclose(seen[0], expected, rtol=0, atol=1e-6)
    assert torch.equal(seen[0][0, 2:], clean[0, 2:])


def test_attention_mask_wins_over_padding_idx():
    # As with GPT-2, where the pad id is also the end-of-text id and a real final token.
    emb = nn.Embedding(10, D, padding_idx=9)
    ids = torch.tensor([[3, 4, 9, 9], [7, 1, 2, 9]])
    real = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    clean = emb(ids)
    handle = attach(nn.Sequential(emb), NEFTune(5.0), at="embeddings", seed=0)
    with handle.attention_mask(real):
        out = emb(ids)
    assert torch.equal(out[0, 2:], clean[0, 2:])
    assert not torch.equal(out[1, 3], clean[1, 3])  # real token with the pad id takes noise


def test_other_kinds_and_schedules_at_the_embeddings():
    emb = nn.Embedding(10, D, padding_idx=0)
    ids = torch.tensor([[3, 0], [0, 5]])
    clean = emb(ids)
    model = nn.Sequential(emb)
    attach(model, Gaussian(std=1.0), at="embeddings", seed=0)
    out = model(ids)
    assert torch.equal(out[0, 1], clean[0, 1]) and torch.equal(out[1, 0], clean[1, 0])
    layer = NoiseLayer(NEFTune(alpha=Linear(0.0, 5.0, steps=10)))
    x = torch.randn(2, 3, D)
    assert layer(x) is x
    assert not torch.equal(layer(x), x)
