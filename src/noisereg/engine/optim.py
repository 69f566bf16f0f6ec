"""Optimizers over the flat parameter buffer of stacked replicas, with torch's own update rules.

Every update is elementwise, so one kernel updates all replicas at once; each replica has its own
state (moments, momentum buffer) in buffers laid out like the parameters.
``tests/engine/test_equivalence.py`` checks the result against the real optimizers in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor

from noisereg._compat.torch_private import adam_step_, sgd_step_
from noisereg.engine.specs import OptimSpec

__all__ = ["StackedOptimizer", "clip_grad_norm"]


def clip_grad_norm(blocks: Sequence[Tensor], max_norm: float) -> Tensor:
    """Rescale each replica's gradient as ``torch.nn.utils.clip_grad_norm_`` does; return the norms.

    ``blocks`` are [R, ...] tensors, one gradient per parameter, scaled in place. ‖g‖ = (Σ_p ‖g_p‖₂²)^½
    per replica; every block is multiplied by min(1, max_norm / (‖g‖ + 1e-6)). The squared norms are
    batched dot products, which round each replica alike whatever the number of replicas.
    """
    flat = [b.reshape(b.shape[0], -1) for b in blocks]
    # a model has at least one parameter, so the sum is a tensor, never sum()'s start value 0
    squares = cast(Tensor, sum(torch.bmm(f.unsqueeze(1), f.unsqueeze(2)) for f in flat))
    total = squares.view(-1).sqrt()
    coef = (max_norm / (total + 1e-6)).clamp_(max=1.0)
    for block in blocks:
        block.mul_(coef.view(-1, *([1] * (block.dim() - 1))))
    return total


class StackedOptimizer:
    """One optimizer state per replica over a flat parameter buffer.

    The update is torch's own: the fused kernels behind ``torch.optim.SGD``/``Adam``/``AdamW`` with
    ``fused=True``, called on the flat buffer directly through :mod:`noisereg._compat` (the
    optimizers' Python wrappers cost more than the update itself here; they are the fallback).
    The kernels are elementwise, so each replica's update depends only on its own parameters,
    gradient and state.

    Args:
        spec: the optimizer.
        params: the flat parameter buffer (updated in place by :meth:`step`).
        blocks: maps a flat buffer laid out like ``params`` to its per-parameter [R, k] views (for
            per-replica gradient clipping).
    """

    def __init__(self, spec: OptimSpec, params: Tensor, blocks: Callable[[Tensor], list[Tensor]]) -> None:
        self.spec, self.params, self.blocks = spec, params, blocks
        self.first_step = True
        if spec.name == "sgd":
            self.state = [torch.empty_like(params)] if spec.momentum else []
        else:
            self.state = [torch.zeros_like(params), torch.zeros_like(params)]
            self.steps = torch.zeros((), dtype=torch.float32, device=params.device)

    def step(self, grads: Tensor) -> None:
        """Clip (if asked) and apply one update from ``grads`` (flat; clipping changes it in place)."""
        spec = self.spec
        if spec.clip_grad_norm is not None:
            clip_grad_norm(self.blocks(grads), spec.clip_grad_norm)
        if spec.name == "sgd":
            sgd_step_(
                self.params,
                grads,
                self.state[0] if self.state else None,
                lr=spec.lr,
                momentum=spec.momentum,
                weight_decay=spec.weight_decay,
                first_step=self.first_step,
                nesterov=spec.nesterov,
            )
        else:
            adam_step_(
                self.params,
                grads,
                self.state[0],
                self.state[1],
                self.steps,
                lr=spec.lr,
                betas=spec.betas,
                eps=spec.eps,
                weight_decay=spec.weight_decay,
                decoupled=spec.name == "adamw",
            )
        self.first_step = False
