"""What the robustness evaluations share: argument checks, eval mode, reading classes off outputs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from noisereg._checks import check_real

Model = Callable[[Tensor], Tensor]

# Random draws are made in chunks of about this many values, whatever the batch size.
CHUNK_ELEMENTS = 1 << 20


def check_model(model: object) -> Model:
    if not callable(model):
        got = type(model).__name__
        raise TypeError(f"model must be an nn.Module or a callable on a batch, got {got}")
    return model


def check_inputs(x: object, *, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = f"dtype={x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor [N, ...], got {got}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have a batch dimension [N, ...], got a scalar")
    return x


def check_positive(value: object, name: str) -> float:
    return check_real(value, name, low=0.0, low_open=True)


@contextlib.contextmanager
def evaluating(model: Model) -> Iterator[None]:
    """Eval mode without gradients for the duration; each submodule's own training flag comes back."""
    flags = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    for module, _ in flags:
        module.training = False
    try:
        with torch.no_grad():
            yield
    finally:
        for module, flag in flags:
            module.training = flag


def predicted_classes(outputs: Tensor, *, from_logits: bool, batch: int) -> tuple[Tensor, int]:
    """Class per row and the number of classes: argmax of ``[B, C]`` outputs, a threshold for one column.

    One output column is class 1 when the logit is > 0 (``from_logits``) or the probability > 0.5.
    """
    if not isinstance(outputs, Tensor) or outputs.dim() not in (1, 2) or outputs.shape[0] != batch:
        shape = list(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise ValueError(f"the model must return [batch] or [batch, classes] outputs for {batch} inputs, got {shape}")
    if outputs.dim() == 2 and outputs.shape[1] > 1:
        return outputs.argmax(dim=1), outputs.shape[1]
    scores = outputs.reshape(batch)
    return (scores > (0.0 if from_logits else 0.5)).long(), 2


def rebatch(chunks: Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """The rows of ``chunks``, in order, regrouped into batches of ``batch_size`` (the last smaller).

    Random draws are made per chunk, with chunk sizes that do not depend on ``batch_size``; regrouping
    them here is what keeps the noise independent of the batch size.
    """
    pending: list[Tensor] = []
    ready = 0
    for chunk in chunks:
        pending.append(chunk)
        ready += len(chunk)
        while ready >= batch_size:
            block = torch.cat(pending) if len(pending) > 1 else pending[0]
            yield block[:batch_size]
            rest = block[batch_size:]
            pending, ready = ([rest] if len(rest) else []), len(rest)
    if ready:
        yield torch.cat(pending) if len(pending) > 1 else pending[0]


def rows_per_chunk(row: Tensor) -> int:
    """How many rows shaped like ``row`` one random draw makes: about 2^20 values, at least one row."""
    return max(1, CHUNK_ELEMENTS // max(1, row.numel()))
