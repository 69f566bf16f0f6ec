"""Losses, their gradients and evaluation metrics for stacked replicas.

Outputs come in the engine's orientation ``zT`` of shape ``[R, out, n]`` (replica, output, sample).
Training targets are class probabilities (``bce``: P(y = 1) [R, n]; ``ce``: [R, n, C]) or values
(``mse``: [R, n, out]), so that noisy targets need no special case. Every loss is the mean over the
batch, as torch's ``BCEWithLogitsLoss``, ``CrossEntropyLoss`` and ``MSELoss`` (mean over samples and
outputs) compute it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["training_targets", "output_grad", "training_loss", "batch_loss", "Evaluator", "per_replica"]

# torch's CPU kernels run 2 vectors at a time and finish a tensor's tail with scalar code, which for
# some functions (sigmoid, elu, selu, gelu in float64) rounds differently. Padding each replica's
# values to a multiple of this many elements keeps every value on the vector path, so these functions
# do not round a replica's values differently with the size of its stack (other kernels still may:
# the engine promises independence of the stack size to rounding only, see noisereg.engine).
_VECTOR_ELEMENTS = 64


def per_replica(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` for an elementwise ``fn`` on a stack ``x`` [R, ...], computed so that each replica's
    values take the vector path whatever R is (see _VECTOR_ELEMENTS)."""
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
        # σ(z) = 1 / (1 + e^(−z)), from exp, which rounds alike on every code path (torch.sigmoid
        # does not, see per_replica), and keeps full relative precision in both tails.
        return torch.neg(zT).exp_().add_(1.0).reciprocal_().sub_(q.unsqueeze(1)).div_(batch)
    if loss == "ce":
        return torch.softmax(zT, dim=1).sub_(q.transpose(1, 2)).div_(batch)
    return (zT - q.transpose(1, 2)).mul_(2.0 / (batch * zT.shape[1]))


def training_loss(loss: str, zT: Tensor, q: Tensor) -> Tensor:
    """Mean loss of each replica on its batch, differentiable, shape [R] (output_grad's loss)."""
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(zT[:, 0], q, reduction="none").mean(-1)
    if loss == "ce":
        return -(torch.log_softmax(zT, dim=1) * q.transpose(1, 2)).sum(1).mean(-1)
    return (zT - q.transpose(1, 2)).square().mean((1, 2))


def _rows(x: Tensor) -> np.ndarray:
    """x [R, ...] as float64 numpy rows [R, k]; numpy reduces each row on its own (pairwise), so a
    row's mean does not depend on how many rows there are."""
    return x.detach().reshape(x.shape[0], -1).to("cpu", torch.float64).numpy()


def batch_loss(loss: str, zT: Tensor, q: Tensor) -> np.ndarray:
    """Summed loss of each replica over its batch against (possibly soft) targets, shape [R]."""
    if loss == "bce":
        per_sample = F.binary_cross_entropy_with_logits(zT[:, 0], q, reduction="none")
    elif loss == "ce":
        per_sample = -(torch.log_softmax(zT, dim=1) * q.transpose(1, 2))
    else:
        per_sample = (zT - q.transpose(1, 2)).square_().div_(zT.shape[1])
    return _rows(per_sample).sum(-1)


class Evaluator:
    """Clean metrics [R] of each replica on every data part, from one forward pass over all parts.

    ``parts`` maps a part's name to its targets as given in FoldData, stacked [R, n, ...]. Per part:
    ``loss`` (the mean over samples, and over outputs for mse); ``acc`` (fraction correct; bce
    predicts 1 when the logit is > 0) for classification; ``r2`` = 1 − SS_res/SS_tot per output,
    averaged over outputs (scikit-learn's ``r2_score`` default), for regression. Per-sample values
    are computed in torch for all parts at once and reduced per part in float64 numpy.
    """

    def __init__(self, loss: str, parts: dict[str, Tensor]) -> None:
        self.loss = loss
        ends = np.cumsum([y.shape[1] for y in parts.values()]).tolist()
        self.slices = {name: slice(end - y.shape[1], end) for (name, y), end in zip(parts.items(), ends, strict=True)}
        self.y = torch.cat(list(parts.values()), dim=1)
        if loss == "mse":
            target = _rows(self.y).reshape(self.y.shape[0], self.y.shape[1], -1)
            self.target = target.transpose(0, 2, 1)  # [R, out, n]
            self.total = {
                name: ((self.target[..., sl] - self.target[..., sl].mean(-1, keepdims=True)) ** 2).sum(-1)
                for name, sl in self.slices.items()
            }

    def __call__(self, zT: Tensor) -> dict[str, np.ndarray]:
        """Metrics named ``{part}_{metric}`` for outputs zᵀ [R, out, n_all] of the concatenated parts."""
        if self.loss == "mse":
            out = _rows(zT).reshape(zT.shape)
            squares = (out - self.target) ** 2
            metrics = {}
            for name, sl in self.slices.items():
                metrics[f"{name}_loss"] = squares[..., sl].reshape(zT.shape[0], -1).mean(-1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    metrics[f"{name}_r2"] = (1.0 - squares[..., sl].sum(-1) / self.total[name]).mean(-1)
            return metrics
        if self.loss == "bce":
            z, y = zT[:, 0], self.y.to(zT.dtype)
            per_sample = F.binary_cross_entropy_with_logits(z, y, reduction="none")
            correct = (z > 0).to(z.dtype) == y
        else:
            labels = self.y.long()
            per_sample = F.cross_entropy(zT, labels, reduction="none")
            correct = zT.argmax(1) == labels
        losses, hits = _rows(per_sample), _rows(correct)
        metrics = {}
        for name, sl in self.slices.items():
            metrics[f"{name}_loss"] = losses[:, sl].mean(-1)
            metrics[f"{name}_acc"] = hits[:, sl].mean(-1)
        return metrics
