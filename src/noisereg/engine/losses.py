"""Losses, their gradients and evaluation metrics for stacked replicas.

Outputs come in the engine's orientation ``zT`` of shape ``[R, out, n]`` (replica, output, sample).
Training targets are class probabilities (``bce``: P(y = 1) [R, n]; ``ce``: [R, n, C]) or values
(``mse``: [R, n, out]), so that noisy targets need no special case. Every loss is the mean over the
batch, as torch's ``BCEWithLogitsLoss``, ``CrossEntropyLoss`` and ``MSELoss`` (mean over samples and
outputs) compute it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["training_targets", "output_grad", "batch_loss", "evaluate", "per_replica"]

# torch's CPU kernels run 2 vectors at a time and finish a tensor's tail with scalar code, which for
# some functions (sigmoid, elu, selu, gelu in float64) rounds differently. Padding each replica's
# values to a multiple of this many elements keeps every value on the vector path, so a replica's
# numbers do not depend on how many replicas share its stack.
_VECTOR_ELEMENTS = 64


def per_replica(fn, x: Tensor) -> Tensor:
    """``fn(x)`` for an elementwise ``fn`` on a stack ``x`` [R, ...], computed so that each replica's
    result is bitwise the same whatever R is (see _VECTOR_ELEMENTS)."""
    rows = x.shape[0]
    size = x.numel() // rows if rows else 0
    pad = -size % _VECTOR_ELEMENTS
    if pad == 0 and x.is_contiguous():
        return fn(x)
    padded = F.pad(x.reshape(rows, size), (0, pad))
    return fn(padded)[:, :size].reshape(x.shape)


def training_targets(loss: str, y: Tensor, out_features: int, dtype: torch.dtype) -> Tensor:
    """Targets of one data part [n, ...] in the training representation described above."""
    if loss == "bce":
        return y.to(dtype)
    if loss == "ce":
        return F.one_hot(y.long(), out_features).to(dtype)
    return y.to(dtype).reshape(y.shape[0], out_features)


def output_grad(loss: str, zT: Tensor, q: Tensor) -> Tensor:
    """d(mean loss)/d zT, shape [R, out, B]."""
    batch = zT.shape[-1]
    if loss == "bce":
        return per_replica(torch.sigmoid, zT).sub_(q.unsqueeze(1)).div_(batch)
    if loss == "ce":
        return torch.softmax(zT, dim=1).sub_(q.transpose(1, 2)).div_(batch)
    return (zT - q.transpose(1, 2)).mul_(2.0 / (batch * zT.shape[1]))


def batch_loss(loss: str, zT: Tensor, q: Tensor) -> Tensor:
    """Mean loss of each replica on its batch against (possibly soft) targets, shape [R]."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(zT[:, 0], q, reduction="none").mean(-1)
    if loss == "ce":
        return -(torch.log_softmax(zT, dim=1) * q.transpose(1, 2)).sum(1).mean(-1)
    return (zT - q.transpose(1, 2)).square().mean((1, 2))


def evaluate(loss: str, zT: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Clean metrics of each replica on one data part (y as given in FoldData, stacked [R, n, ...]).

    ``loss`` always; ``acc`` (fraction correct; bce predicts 1 when the logit is > 0) for
    classification; ``r2`` = 1 − SS_res/SS_tot per output, averaged over outputs (scikit-learn's
    ``r2_score`` default), for regression.
    """
    if loss == "bce":
        z = zT[:, 0]
        yf = y.to(z.dtype)
        return {
            "loss": F.binary_cross_entropy_with_logits(z, yf, reduction="none").mean(-1),
            "acc": ((z > 0).to(z.dtype) == yf).to(z.dtype).mean(-1),
        }
    if loss == "ce":
        labels = y.long()
        return {
            "loss": F.cross_entropy(zT, labels, reduction="none").mean(-1),
            "acc": (zT.argmax(1) == labels).to(zT.dtype).mean(-1),
        }
    target = y.to(zT.dtype).reshape(y.shape[0], y.shape[1], zT.shape[1]).transpose(1, 2)
    residual = (zT - target).square().sum(-1)
    total = (target - target.mean(-1, keepdim=True)).square().sum(-1)
    return {
        "loss": (zT - target).square().mean((1, 2)),
        "r2": (1.0 - residual / total).mean(-1),
    }
