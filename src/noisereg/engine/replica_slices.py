"""Replica r's own randomness on slice r of a value batched by ``torch.func.vmap``.

Under ``vmap`` over R replicas a hook on the shared model sees one logical value; behind it lies the
stack ``[R, ...]`` whose slice r is replica r's. :func:`on_replicas` hands a function that stack
(below the batching level, so random draws are ordinary ones) and batches its result again. On it:

- :class:`Place`: input and activation noise, replica r's noise layers (in attach order) on slice r;
  where each replica has at most one Gaussian layer whose std is a number or a built-in schedule,
  drawing from a Stream (the default on a CPU), all replicas in one pass over the stack, each row what its layer draws alone
  (one call, no tensor per replica, no stack: 75 ms -> 47-54 ms a step for 60 replicas of the
  case-study MLP, benchmarks/study_speed.py's grid, on a loaded 2-vCPU machine);
- :class:`EmbeddingPlace`: embedding noise (NEFTune), with replica r's padding from its own token ids;
- :class:`noisereg.engine.model_randomness.ModelRandomness`: the model's own random calls (dropout),
  replica r's draws from torch's global generator in replica r's state.

A replica's draws have the shapes of a lone replica's, so its noise does not depend on its group.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from noisereg.layers import NoiseLayer
from noisereg.noise import Gaussian
from noisereg.schedules import span
from noisereg.streams import Stream, fill_normals

__all__ = ["EmbeddingPlace", "Place", "on_replicas"]


def _stack(x: Tensor | None, dim: int | None, size: int) -> Tensor | None:
    if x is None:
        return None
    return x.movedim(dim, 0) if dim is not None else x.expand(size, *x.shape)


class _PerReplica(torch.autograd.Function):
    """``fn`` on the stack ``[R, ...]`` behind a value batched by ``vmap`` (and on the stack of
    ``extra``, a second value such as token ids, when given). Its vmap rule runs below the batching
    level, so the draws are ordinary ones, and autograd records ``fn``'s operations as for any tensor code."""

    @staticmethod
    def forward(x: Tensor, extra: Tensor | None, fn: Any) -> Tensor:
        raise RuntimeError("per-replica noise runs under the vectorized path's vmap only")

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[int | None, int | None, None], x: Tensor, extra: Tensor | None, fn: Any
    ) -> tuple[Tensor, int]:
        stack = _stack(x, in_dims[0], info.batch_size)
        if extra is None:
            return fn(stack), 0
        return fn(stack, _stack(extra, in_dims[1], info.batch_size)), 0


def on_replicas(x: Tensor, fn: Callable[..., Tensor], *, extra: Tensor | None = None) -> Tensor:
    """Inside ``vmap`` over R replicas: ``fn`` on the stack ``[R, ...]`` behind the batched ``x``
    (slice r is replica r's value), its result batched again; with ``extra``, ``fn(stack, extra_stack)``.
    Outside ``vmap``: RuntimeError.

    >>> from torch.func import vmap
    >>> scale = torch.tensor([[1.0], [2.0], [3.0]])  # one factor per replica, applied outside the batching
    >>> vmap(lambda x: on_replicas(x, lambda xs: xs * scale))(torch.ones(3, 2))
    tensor([[1., 1.],
            [2., 2.],
            [3., 3.]])
    """
    return _PerReplica.apply(x, extra, fn)


class Place:
    """One place of activation or input noise, for every replica: replica r's layers (in the order
    they were attached) on slice r; a replica without noise there keeps its slice."""

    def __init__(self, layers: list[list[NoiseLayer]]) -> None:
        self.layers = layers
        self.training = True

    def __call__(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if not self.training:
            return x
        return on_replicas(x, self._stacked)

    def _stacked(self, xs: Tensor) -> Tensor:
        if self._one_pass(xs):
            return self._gaussian_rows(xs)
        out = []
        # unbind, not xs[r]: one backward node for all slices instead of a zero-filled [R, ...] per replica
        for value, layers in zip(xs.unbind(0), self.layers, strict=True):
            for layer in layers:
                layer.training = True
                value = layer(value)
            out.append(value)
        return torch.stack(out)

    def _one_pass(self, xs: Tensor) -> bool:
        """Whether every replica's noise here is one Gaussian layer without clip whose std is a number
        or a built-in schedule (whose values are numbers), drawing from a Stream (or no noise at all),
        on a float32/float64 CPU stack: then :meth:`_gaussian_rows` draws all of them in one call."""
        if xs.device.type != "cpu" or xs.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling():
            return False
        for layers in self.layers:
            if len(layers) > 1:
                return False
            for layer in layers:
                kind = layer.kind
                if type(kind) is not Gaussian or kind.clip is not None:
                    return False
                if not isinstance(kind.std, numbers.Real) and span(kind.std) is None:  # a tensor, an own callable
                    return False
                if type(layer).forward is not NoiseLayer.forward or not isinstance(layer.generator(xs.device), Stream):
                    return False
        return True

    def _gaussian_rows(self, xs: Tensor) -> Tensor:
        """Each replica's x + σ·ε on its row, in one pass over the stack: the numbers, counters and
        bookkeeping (step, applied) of each layer's own forward (``noise.gaussian`` on a Stream)."""
        rows, keys, counters, scales = [], [], [], []
        size = xs[0].numel() if len(xs) else 0
        for r, layers in enumerate(self.layers):
            for layer in layers:  # NoiseLayer.forward, without its call
                if not layer.training:
                    layer.training = True
                if not layer.active:
                    continue
                step = layer._advance_eager()
                if layer.kind.is_off(step):
                    continue
                layer._count_eager()
                std = float(layer.kind.resolved(step)["std"])  # checked against the kind's range, as alone
                if std == 0.0:  # noise.gaussian draws nothing at 0
                    continue
                stream = layer.generator(xs.device)
                rows.append(r)
                keys.append(stream.key)  # type: ignore[union-attr]
                counters.append(stream.reserve(size))  # type: ignore[union-attr]
                scales.append(std)
        if not rows:
            return xs
        return _GaussianRows.apply(xs, rows, keys, counters, scales)


class _GaussianRows(torch.autograd.Function):
    """x + σ_i·ε_i on rows ``rows`` of the stack (the others copied), one pass; dx̃/dx is the identity."""

    @staticmethod
    def forward(
        ctx: Any, xs: Tensor, rows: list[int], keys: list[int], counters: list[int], scales: list[float]
    ) -> Tensor:
        xs = xs.detach()
        if not xs.is_contiguous():
            return _rows_in_layout(xs, rows, keys, counters, scales)
        flat = xs.view(len(xs), -1)
        out = _copy_others(torch.empty_like(flat), flat, rows)
        fill_normals(out, keys, counters, shift=flat, scale=scales, rows=rows)
        return out.view(xs.shape)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None, None]:
        return grad, None, None, None, None


def _rows_in_layout(xs: Tensor, rows: list[int], keys: list[int], counters: list[int], scales: list[float]) -> Tensor:
    """:class:`_GaussianRows` on a stack that is a view across the replicas' values (``vmap`` keeps the
    replica dimension where the model's operations put it: inside a convolution's channels, say): the
    result keeps that layout, which the next operation reads without a copy; a contiguous stack would
    cost a copy here and another there, forward and backward. Each noisy row is drawn in its own
    value's order and added as ``x + z·σ``, bit for bit what the one-pass fill and a lone layer give."""
    out = _copy_others(torch.empty_like(xs), xs, rows)  # empty_like keeps xs's strides
    noise = torch.empty((len(rows), xs[0].numel()), dtype=xs.dtype)
    fill_normals(noise, keys, counters)
    noise.mul_(torch.tensor(scales, dtype=xs.dtype).unsqueeze(1))
    for z, row in zip(noise, rows, strict=True):
        torch.add(xs[row], z.view(xs.shape[1:]), out=out[row])
    return out


def _copy_others(out: Tensor, xs: Tensor, rows: list[int]) -> Tensor:
    """``out`` with every row of ``xs`` but ``rows`` (ascending) copied in, a run of them at a time."""
    start = 0
    for row in [*rows, len(xs)]:
        if row > start:
            out[start:row].copy_(xs[start:row])
        start = row + 1
    return out


class EmbeddingPlace:
    """Embedding noise after one embedding module, for every replica: replica r's layers on slice r,
    padding (token id ``padding_idx``) left alone unless the kind scales by the padded length, as
    :func:`noisereg.sites.embeddings.place_embeddings` does for a lone replica."""

    def __init__(self, layers: list[list[NoiseLayer]], padding_idx: int | None) -> None:
        self.layers = layers
        self.padding_idx = padding_idx

    def hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if not module.training:
            return output
        ids = args[0] if args and isinstance(args[0], Tensor) and self.padding_idx is not None else None
        return on_replicas(output, self._stacked, extra=ids)

    def _stacked(self, xs: Tensor, ids: Tensor | None = None) -> Tensor:
        out = []
        pads = None if ids is None or self.padding_idx is None else ids.eq(self.padding_idx).unsqueeze(-1)
        for r, (value, layers) in enumerate(zip(xs.unbind(0), self.layers, strict=True)):
            pad = None if pads is None else pads[r]
            for layer in layers:
                layer.training = True
                padded = getattr(layer.kind, "length", "real") == "padded"
                value = layer(value) if padded else layer(value, pad, None)
            out.append(value)
        return torch.stack(out)
