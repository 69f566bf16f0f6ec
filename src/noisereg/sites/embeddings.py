"""Noise on token embeddings, NEFTune-style (NEFTune, SymNoise), that never touches padding.

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
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer, registry
from noisereg.noise.additive import uniform
from noisereg.noise.base import NoiseKind, Strength, check_input, check_mask, check_strength
from noisereg.noise.symmetric import rademacher
from noisereg.schedules import Schedule
from noisereg.seeding import NoiseGenerator
from noisereg.sites.placement import (
    MaskSource,
    Placement,
    documents_from_cu_seqlens,
    documents_from_positions,
    padding_mask,
    stream_seed,
)
from noisereg.sites.selectors import Selector, select_modules

__all__ = [
    "neftune",
    "NEFTune",
    "symnoise",
    "SymNoise",
    "place_embeddings",
    "documents_from_positions",
    "documents_from_cu_seqlens",
]


Length = Literal["real", "padded"]


def neftune(
    x: Tensor,
    alpha: Strength,
    *,
    length: Length = "real",
    mask: Tensor | None = None,
    documents: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """NEFTune noise on embeddings ``x`` of shape [batch, L, d] (or [L, d], one sequence).

    x̃_p = x_p + (α / √(L_p·d))·u, u ~ U(−1, 1), where for position p (``length="real"``):

    - L_p counts the real tokens of p's sequence: the positions that ``mask`` (True = padding,
      broadcastable to x) leaves free; masked positions are returned unchanged;
    - with ``documents`` (an integer tensor [batch, L]: positions of one row with the same label
      form one document, as in packed sequences), L_p counts the real tokens of p's document.

    ``length="padded"`` is the popular implementation (transformers' ``neftune_noise_alpha``): L is
    the padded row length and every position, padding included, takes noise; it draws the same
    numbers from the same generator state (equal to float rounding: it computes u·2m − m, this
    function (2u − 1)·m). It takes no ``mask`` or ``documents``.

    Args:
        x: float embeddings; alpha: >= 0 (the paper uses 5, 10, 15), a float or a [batch] tensor.

    Raises:
        ValueError: a shape that is not [batch, L, d] or [L, d], ``documents`` of another shape than
            x's first dimensions, an unknown ``length``, or a mask with ``length="padded"``.

    >>> x = torch.zeros(1, 3, 4)
    >>> pad = torch.tensor([[False, False, True]]).unsqueeze(-1)
    >>> y = neftune(x, 5.0, mask=pad, generator=torch.Generator().manual_seed(0))
    >>> bool((y[0, 2] == 0).all()), bool((y.abs() <= 5.0 / (2 * 4) ** 0.5).all())
    (True, True)
    >>> u = neftune(torch.zeros(1, 3, 4), 12 ** 0.5, generator=torch.Generator().manual_seed(0))  # 2u − 1
    >>> docs = torch.tensor([[0, 0, 1]])  # two packed documents: 2 tokens, then 1
    >>> y = neftune(torch.zeros(1, 3, 4), 5.0, documents=docs, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(y[0, :2], 5.0 / 8 ** 0.5 * u[0, :2]), torch.allclose(y[0, 2], 5.0 / 4 ** 0.5 * u[0, 2])
    (True, True)
    """
    return _scaled_noise(
        x, alpha, kind="neftune", draw=uniform, length=length, mask=mask, documents=documents, generator=generator
    )


def symnoise(
    x: Tensor,
    alpha: Strength,
    *,
    length: Length = "real",
    mask: Tensor | None = None,
    documents: Tensor | None = None,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """SymNoise (Yadav & Singh 2023) on embeddings ``x`` of shape [batch, L, d] (or [L, d]).

    x̃_p = x_p + (α / √(L_p·d))·s, s_i = ±1 with probability 1/2 each (symmetric Bernoulli noise):
    NEFTune's scaling (:func:`neftune`, the same ``L_p``, ``mask``, ``documents`` and ``length``)
    with NEFTune's uniform u ~ U(−1, 1) replaced by a sign, so every noised coordinate moves by
    exactly α/√(L_p·d) (:func:`noisereg.noise.rademacher` draws the signs).

    Args:
        x: float embeddings; alpha: >= 0, a float or a [batch] tensor.

    Raises:
        ValueError: as :func:`neftune`.

    >>> y = symnoise(torch.zeros(1, 2, 8), 4.0, generator=torch.Generator().manual_seed(0))
    >>> sorted(set(y.flatten().tolist()))  # ±4/√(2·8)
    [-1.0, 1.0]
    """
    return _scaled_noise(
        x, alpha, kind="symnoise", draw=rademacher, length=length, mask=mask, documents=documents, generator=generator
    )


def _scaled_noise(
    x: Tensor,
    alpha: Strength,
    *,
    kind: str,
    draw: Callable[..., Tensor],
    length: Length,
    mask: Tensor | None,
    documents: Tensor | None,
    generator: NoiseGenerator | None,
) -> Tensor:
    """NEFTune's scaling α/√(L_p·d) of the noise ``draw`` makes (per-row strength, ``mask``, ``generator``)."""
    check_input(x, kind=kind)
    if x.dim() not in (2, 3):
        raise ValueError(f"{kind} expects embeddings of shape [batch, L, d] or [L, d], got {list(x.shape)}")
    if length not in ("real", "padded"):
        raise ValueError(f"{length=} must be 'real' (each sequence's real tokens) or 'padded'")
    if length == "padded" and (mask is not None or documents is not None):
        raise ValueError("length='padded' noises every position of the padded row: pass no mask or documents")
    mask = check_mask(mask, x)
    single = x.dim() == 2
    batched = x.unsqueeze(0) if single else x
    rows, width = batched.shape[0], batched.shape[1]
    alpha = check_strength(alpha, name="alpha", x=batched)
    if mask is None:
        real = torch.ones(batched.shape[:2], dtype=torch.bool, device=x.device)
    else:
        real = ~(mask.unsqueeze(0) if single else mask).expand(batched.shape).all(dim=-1)
    if documents is None:
        counts = real.sum(dim=1, keepdim=True).expand(rows, width)
    else:
        counts = _document_lengths(_check_documents(documents, batched, single), real)
    scale = 1.0 / torch.sqrt(counts.clamp(min=1).to(batched.dtype) * batched.shape[-1])
    per_row = alpha.reshape(-1, 1) if isinstance(alpha, Tensor) else alpha
    # One row per position: draw() takes a strength per row, and draws in the same order.
    half_width = (per_row * scale).reshape(-1)
    kept = None if mask is None else mask.expand(x.shape).reshape(rows * width, -1)
    noisy = draw(batched.reshape(rows * width, -1), half_width, mask=kept, generator=generator)
    return noisy.reshape(x.shape)


def _check_documents(documents: object, batched: Tensor, single: bool) -> Tensor:
    if not isinstance(documents, Tensor) or documents.is_floating_point() or documents.is_complex():
        got = f"dtype={documents.dtype}" if isinstance(documents, Tensor) else type(documents).__name__
        raise TypeError(f"documents must be an integer tensor of document labels [batch, L], got {got}")
    labels = documents.unsqueeze(0) if single else documents
    if labels.shape != batched.shape[:2]:
        raise ValueError(
            f"documents of shape {list(documents.shape)} must have the embeddings' first dimensions "
            f"{list(batched.shape[:-1]) if not single else list(batched.shape[1:-1])}"
        )
    return labels.to(batched.device)


def _document_lengths(labels: Tensor, real: Tensor) -> Tensor:
    """For each position, the count of real tokens in its row with the same document label."""
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(labels)
    _, group = torch.unique(torch.stack([rows, labels.long()], dim=-1).reshape(-1, 2), dim=0, return_inverse=True)
    counts = torch.zeros(int(group.max()) + 1, dtype=torch.long, device=labels.device)
    counts.index_add_(0, group, real.reshape(-1).long())
    return counts[group].reshape(labels.shape)


def _check_length(length: object) -> None:
    if length not in ("real", "padded"):
        raise ValueError(f"length={length!r} must be 'real' or 'padded'")


@dataclasses.dataclass(frozen=True)
class NEFTune(NoiseKind, kind="neftune"):
    """Config of :func:`neftune`: ``NEFTune(alpha=5.0)``; ``alpha`` may be a schedule;
    ``length="padded"`` reproduces transformers' ``neftune_noise_alpha``.

    Fields: the parameters of :func:`neftune` but ``x``, ``mask``, ``documents`` and ``generator``.

    Raises:
        TypeError, ValueError: ``alpha`` out of range (a schedule: by its range), an unknown ``length``.

    >>> NEFTune(alpha=0.0)(torch.ones(1, 2, 4)).tolist() == torch.ones(1, 2, 4).tolist()
    True
    """

    alpha: float | Schedule | Tensor = 5.0
    length: Length = "real"

    function = staticmethod(neftune)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_length(self.length)


@dataclasses.dataclass(frozen=True)
class SymNoise(NoiseKind, kind="symnoise"):
    """Config of :func:`symnoise`: ``SymNoise(alpha=5.0)``, NEFTune's fields with ±1 noise;
    ``attach(model, SymNoise(alpha=5.0), at="embeddings")`` as NEFTune.

    >>> SymNoise(alpha=0.0)(torch.ones(1, 2, 4)).tolist() == torch.ones(1, 2, 4).tolist()
    True
    """

    alpha: float | Schedule | Tensor = 5.0
    length: Length = "real"

    function = staticmethod(symnoise)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_length(self.length)


def _input_embeddings(root: nn.Module) -> nn.Module | None:
    """A transformers-style model's token embedding (``get_input_embeddings()``), None otherwise."""
    getter = getattr(root, "get_input_embeddings", None)
    if not callable(getter):
        return None
    try:
        module = getter()
    except NotImplementedError:
        return None
    return module if isinstance(module, nn.Module) else None


def place_embeddings(
    root: nn.Module, kind: NoiseKind, *, select: Selector | None, seed: int | None, masks: MaskSource
) -> list[Placement]:
    """Noise on the output of the token embedding: ``root.get_input_embeddings()`` where the model
    has one (transformers' models: not the position or token-type embeddings), every ``nn.Embedding``
    otherwise; or of ``select``'s modules. Padding excluded; packed documents from ``masks``."""
    if select is None:
        select = _input_embeddings(root) or nn.Embedding
    modules = select_modules(root, select)
    padded = getattr(kind, "length", "real") == "padded"
    placements = []
    for name, module in modules:
        layer = NoiseLayer(kind, seed=stream_seed(seed, "embeddings", name))
        padding_idx = getattr(module, "padding_idx", None)

        def hook(
            mod: nn.Module, args: tuple, output: Any, layer: NoiseLayer = layer, pad_id: int | None = padding_idx
        ) -> Tensor:
            if not isinstance(output, Tensor) or not output.is_floating_point():
                raise TypeError(f"embedding noise needs a float tensor output, got {type(output).__name__}")
            layer.training = mod.training
            if padded:
                return layer(output)
            attention = masks.current()
            if attention is not None:
                pad = padding_mask(attention, output)
            elif pad_id is not None and args and isinstance(args[0], Tensor):
                pad = (args[0] == pad_id).unsqueeze(-1)
            else:
                pad = None
            documents = masks.documents(output.shape[:2]) if output.dim() == 3 else None
            return layer(output, pad, documents)

        handle = module.register_forward_hook(hook)
        registry.add_beside(module, layer)

        def undo(module: nn.Module = module, layer: NoiseLayer = layer, handle: Any = handle) -> None:
            handle.remove()
            registry.remove_beside(module, layer)

        placements.append(Placement("embeddings", f"after {name!r}", ("after", module), layer, module, undo))
    return placements
