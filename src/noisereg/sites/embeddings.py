"""Noise on token embeddings, NEFTune-style, that never touches padding.

NEFTune (Jain et al. 2023) adds uniform noise to the embedding output in training:
x̃ = x + (α / √(L·d))·u, u ~ U(−1, 1) elementwise, with d the embedding size and L the sequence length.
The popular implementation takes L from the padded length and noises the padding too; here L is each
sequence's count of real tokens and padded positions are returned bit for bit.

Padding is found, in this order, from an attention mask registered on the handle
(``with handle.attention_mask(mask): ...``), from the model's forward argument named by
``mask="attention_mask"``, or from the embedding's ``padding_idx``. Attention masks follow the usual
convention: 1 (True) = real token, 0 = padding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer, add_beside, remove_beside
from noisereg.noise.additive import uniform
from noisereg.noise.base import NoiseKind, Strength, check_input, check_mask, check_strength
from noisereg.schedules import Schedule
from noisereg.sites.placement import MaskSource, Placement, padding_mask, stream_seed
from noisereg.sites.selectors import Selector, select_modules

__all__ = ["neftune", "NEFTune", "place_embeddings"]


def neftune(
    x: Tensor, alpha: Strength, *, mask: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """NEFTune noise on embeddings ``x`` of shape [batch, L, d] (or [L, d], one sequence).

    x̃_i = x_i + (α / √(L_i·d))·u, u ~ U(−1, 1), where L_i counts the real tokens of sequence i: the
    positions that ``mask`` (True = padding, broadcastable to x) leaves free. Masked positions are
    returned unchanged; a sequence with no real token gets no noise.

    Args:
        x: float embeddings; alpha: >= 0 (the paper uses 5, 10, 15), a float or a [batch] tensor.

    >>> x = torch.zeros(1, 3, 4)
    >>> pad = torch.tensor([[False, False, True]]).unsqueeze(-1)
    >>> y = neftune(x, 5.0, mask=pad, generator=torch.Generator().manual_seed(0))
    >>> bool((y[0, 2] == 0).all()), bool((y.abs() <= 5.0 / (2 * 4) ** 0.5).all())
    (True, True)
    """
    check_input(x, kind="neftune")
    if x.dim() not in (2, 3):
        raise ValueError(f"neftune expects embeddings of shape [batch, L, d] or [L, d], got {list(x.shape)}")
    mask = check_mask(mask, x)
    single = x.dim() == 2
    batched = x.unsqueeze(0) if single else x
    alpha = check_strength(alpha, name="alpha", x=batched)
    if mask is None:
        real = torch.full(batched.shape[:1], batched.shape[1], device=x.device)
    else:
        pad = (mask.unsqueeze(0) if single else mask).expand(batched.shape).all(dim=-1)
        real = (~pad).sum(dim=1)
    scale = 1.0 / torch.sqrt(real.clamp(min=1).to(batched.dtype) * batched.shape[-1])
    half_width = (alpha.flatten() if isinstance(alpha, Tensor) else alpha) * scale
    kept = None if mask is None else mask.expand(x.shape).reshape(batched.shape)
    noisy = uniform(batched, half_width, mask=kept, generator=generator)
    return noisy.squeeze(0) if single else noisy


@dataclasses.dataclass(frozen=True)
class NEFTune(NoiseKind):
    """Config of :func:`neftune`: ``NEFTune(alpha=5.0)``; ``alpha`` may be a schedule."""

    alpha: float | Schedule | Tensor = 5.0

    strength_field = "alpha"
    function = staticmethod(neftune)


def place_embeddings(
    root: nn.Module, kind: NoiseKind, *, select: Selector | None, seed: int | None, masks: MaskSource
) -> list[Placement]:
    """Noise on the output of every ``nn.Embedding`` (or of ``select``'s modules), padding excluded."""
    modules = select_modules(root, nn.Embedding if select is None else select)
    placements = []
    for name, module in modules:
        layer = NoiseLayer(kind, seed=stream_seed(seed, "embeddings", name))
        padding_idx = getattr(module, "padding_idx", None)

        def hook(mod: nn.Module, args: tuple, output: Any, layer: NoiseLayer = layer, pad_id=padding_idx):
            if not isinstance(output, Tensor) or not output.is_floating_point():
                raise TypeError(f"embedding noise needs a float tensor output, got {type(output).__name__}")
            layer.training = mod.training
            attention = masks.current()
            if attention is not None:
                pad = padding_mask(attention, output)
            elif pad_id is not None and args and isinstance(args[0], Tensor):
                pad = (args[0] == pad_id).unsqueeze(-1)
            else:
                pad = None
            return layer(output, pad)

        handle = module.register_forward_hook(hook)
        add_beside(module, layer)

        def undo(module: nn.Module = module, layer: NoiseLayer = layer, handle: Any = handle) -> None:
            handle.remove()
            remove_beside(module, layer)

        placements.append(Placement("embeddings", f"after {name!r}", ("after", module), layer, module, undo))
    return placements
