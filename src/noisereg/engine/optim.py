"""Optimizers over the flat parameter buffer of stacked replicas, with torch's exact update rules.

Every update is elementwise, so one set of tensor ops updates all replicas at once; each replica has
its own state (moments, momentum buffer) in buffers laid out like the parameters. The formulas are
those of torch's single-tensor implementations of ``SGD``, ``Adam`` and ``AdamW`` (same operations in
the same order), which ``tests/engine/test_equivalence.py`` checks against the real optimizers in
float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from noisereg.engine.specs import OptimSpec

__all__ = ["StackedOptimizer", "clip_grad_norm"]


def clip_grad_norm(blocks: Sequence[Tensor], max_norm: float) -> Tensor:
    """Rescale each replica's gradient as ``torch.nn.utils.clip_grad_norm_`` does; return the norms.

    ``blocks`` are [R, k] views of one gradient per parameter. ‖g‖ = ‖(‖g_p‖₂)_p‖₂ per replica; every
    block is multiplied by min(1, max_norm / (‖g‖ + 1e-6)).
    """
    norms = torch.stack([torch.linalg.vector_norm(b, dim=1) for b in blocks], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)
    coef = (max_norm / (total + 1e-6)).clamp_(max=1.0).unsqueeze(1)
    for block in blocks:
        block.mul_(coef)
    return total


class StackedOptimizer:
    """One optimizer state per replica over a flat parameter buffer.

    Args:
        spec: the optimizer.
        params: the flat parameter buffer (updated in place by :meth:`step`).
        blocks: maps a flat buffer laid out like ``params`` to its per-parameter [R, k] views (for
            per-replica gradient clipping).
    """

    def __init__(self, spec: OptimSpec, params: Tensor, blocks: Callable[[Tensor], list[Tensor]]) -> None:
        self.spec, self.params, self.blocks = spec, params, blocks
        self.steps = 0
        if spec.name == "sgd":
            self.momentum_buffer: Tensor | None = None
        else:
            self.exp_avg = torch.zeros_like(params)
            self.exp_avg_sq = torch.zeros_like(params)

    def step(self, grads: Tensor) -> None:
        """Clip (if asked) and apply one update from ``grads`` (flat, changed in place)."""
        spec = self.spec
        if spec.clip_grad_norm is not None:
            clip_grad_norm(self.blocks(grads), spec.clip_grad_norm)
        self.steps += 1
        if spec.name == "sgd":
            self._sgd(grads)
        else:
            self._adam(grads)

    def _sgd(self, grad: Tensor) -> None:
        spec, p = self.spec, self.params
        if spec.weight_decay != 0:
            grad = grad.add(p, alpha=spec.weight_decay)
        if spec.momentum != 0:
            if self.momentum_buffer is None:
                self.momentum_buffer = grad.clone()
            else:
                self.momentum_buffer.mul_(spec.momentum).add_(grad)
            grad = self.momentum_buffer
        p.add_(grad, alpha=-spec.lr)

    def _adam(self, grad: Tensor) -> None:
        spec, p = self.spec, self.params
        beta1, beta2 = spec.betas
        if spec.weight_decay != 0:
            if spec.name == "adamw":
                p.mul_(1 - spec.lr * spec.weight_decay)
            else:
                grad = grad.add(p, alpha=spec.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2 = 1 - beta2**self.steps
        step_size = spec.lr / bias_correction1
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(spec.eps)
        p.addcdiv_(self.exp_avg, denom, value=-step_size)

    def state_tensors(self) -> list[Tensor]:
        """The per-element state buffers (for memory accounting)."""
        if self.spec.name == "sgd":
            return [] if self.momentum_buffer is None else [self.momentum_buffer]
        return [self.exp_avg, self.exp_avg_sq]
