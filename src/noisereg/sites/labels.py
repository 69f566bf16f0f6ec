"""Class labels as the target noises read them: the class count, class-id checks, soft targets.

Labels come as integer class indices of any shape ``[batch, ...]`` or as soft targets, floating
point with the classes on the last dimension ``[batch, ..., C]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from noisereg._checks import check_int

__all__ = ["class_count", "check_ids", "as_soft"]


def class_count(y: Tensor, num_classes: int | None) -> int:
    """The class count: from soft targets' last dimension, else ``num_classes`` (required for ids)."""
    if not isinstance(y, Tensor):
        raise TypeError(f"targets must be a torch.Tensor, got {type(y).__name__}")
    if y.is_floating_point():
        if y.dim() < 2:
            raise ValueError(
                f"soft targets must have shape [batch, ..., classes], got {list(y.shape)}; "
                "class indices must be an integer tensor"
            )
        if num_classes is not None and num_classes != y.shape[-1]:
            raise ValueError(f"{num_classes=} does not match the soft targets' last dimension {y.shape[-1]}")
        return y.shape[-1]
    if y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"targets must be integer class indices or float soft targets, got dtype={y.dtype}")
    if num_classes is None:
        raise ValueError("num_classes is required with integer class indices (e.g. num_classes=10)")
    return check_int(num_classes, "num_classes", low=1)


def check_ids(y: Tensor, classes: int, ignore_index: int | None) -> None:
    """Raise ``ValueError`` naming up to three class ids outside [0, ``classes``) (``ignore_index`` allowed)."""
    if torch.compiler.is_compiling() or y.numel() == 0:
        return
    valid = (y >= 0) & (y < classes)
    if ignore_index is not None:
        valid |= y == ignore_index
    if not bool(valid.all()):
        bad = y[~valid][:3].tolist()
        ignored = "" if ignore_index is None else f" (or {ignore_index=})"
        raise ValueError(f"class indices must be in [0, {classes}){ignored}, got {bad}")


def as_soft(y: Tensor, classes: int, dtype: torch.dtype | None = None) -> Tensor:
    """Float targets with classes on the last dim: one-hot for ids, ``y`` itself for soft targets."""
    if y.is_floating_point():
        return y
    check_ids(y, classes, None)
    out = torch.nn.functional.one_hot(y.long(), classes)
    return out.to(dtype or torch.get_default_dtype())
