"""Curvature of a loss at the current weights: the Hessian trace by Hutchinson's estimator.

Flat-minimum claims (label-noise SGD, Anti-PGD) are claims about this number, so studies measure it
rather than infer it from accuracy. Hutchinson (1989): for a symmetric matrix ``H`` and a random
vector ``v`` with independent Rademacher entries (each ``+1`` or ``-1`` with probability 1/2),
``E[v^T H v] = tr(H)``. The estimate is the mean of ``v^T H v`` over ``samples`` independent draws,
each ``H v`` a Hessian-vector product by double backward (no Hessian is ever formed), and its
standard error is the sample standard deviation over ``sqrt(samples)``. Rademacher vectors give the
smallest variance among such estimators: ``Var(v^T H v) = 2 * sum_{i != j} H_ij^2``, so the estimate
is exact for a diagonal ``H``.

The draws come from a ``torch.Generator`` seeded by ``seed``; the global RNG is not touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from noisereg._checks import check_callable, check_int, check_type
from noisereg.seeding import check_seed

__all__ = ["TraceEstimate", "hessian_trace"]


@dataclass(frozen=True)
class TraceEstimate:
    """A Hutchinson estimate of ``tr(H)``: its mean, standard error and number of probe vectors."""

    estimate: float
    stderr: float
    samples: int


def _parameters(params: nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    found: list[torch.Tensor]
    if isinstance(params, nn.Module):
        found = [p for p in params.parameters() if p.requires_grad]
    else:
        check_type(params, "params", Iterable, "an nn.Module or an iterable of tensors")
        found = list(params)
        for i, p in enumerate(found):
            check_type(p, f"params[{i}]", torch.Tensor, "a tensor")
            if not p.requires_grad:
                raise ValueError(f"params[{i}] does not require grad; the Hessian is taken with respect to it")
    if not found:
        raise ValueError("params holds no tensor that requires grad; expected at least one")
    return found


def hessian_trace(
    loss: Callable[[], torch.Tensor],
    params: nn.Module | Iterable[torch.Tensor],
    *,
    samples: int = 100,
    seed: int = 0,
) -> TraceEstimate:
    """Estimate the trace of the Hessian of ``loss()`` with respect to ``params`` (Hutchinson).

    Args:
        loss: a function of no arguments returning the scalar loss, computed from ``params`` (call
            the model inside it, e.g. ``lambda: F.mse_loss(model(x), y)``). It is called once.
        params: the tensors to differentiate with respect to, or a module (its parameters that
            require grad). Put the model in ``eval()`` first if it has noise or dropout: the Hessian
            of a noisy loss is a different quantity.
        samples: the number of Rademacher probe vectors, at least 2 (for the standard error).
        seed: seeds the probe vectors; the same seed gives the same estimate on the same machine.

    Returns:
        a :class:`TraceEstimate`; ``estimate`` is in the loss's units per squared parameter unit.
    """
    check_callable(loss, "loss", "a function of no arguments returning a scalar tensor")
    samples = check_int(samples, "samples", low=2)
    seed = check_seed(seed)
    tensors = _parameters(params)
    value = loss()
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"loss() returned {shape}; expected a scalar tensor")
    grads = torch.autograd.grad(value.reshape(()), tensors, create_graph=True, allow_unused=True)
    pairs = [(p, g) for p, g in zip(tensors, grads, strict=True) if g is not None and g.requires_grad]
    if not pairs:
        # The loss is at most linear in every parameter: the Hessian is exactly zero.
        return TraceEstimate(0.0, 0.0, samples)
    generator = torch.Generator(device=pairs[0][0].device).manual_seed(seed)
    values = []
    for i in range(samples):
        probes = [
            torch.randint(0, 2, p.shape, generator=generator, device=p.device).to(p.dtype).mul_(2).sub_(1)
            for p, _ in pairs
        ]
        dot = torch.stack([(g * v).sum() for (_, g), v in zip(pairs, probes, strict=True)]).sum()
        hv = torch.autograd.grad(dot, [p for p, _ in pairs], retain_graph=i < samples - 1, allow_unused=True)
        values.append(
            math.fsum(float((h.double() * v.double()).sum()) for h, v in zip(hv, probes, strict=True) if h is not None)
        )
    mean = math.fsum(values) / samples
    var = math.fsum((x - mean) ** 2 for x in values) / (samples - 1)
    return TraceEstimate(mean, math.sqrt(var / samples), samples)
