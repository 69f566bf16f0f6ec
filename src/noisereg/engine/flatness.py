"""The flatness of each trained replica: the trace of its training loss's Hessian (Hutchinson).

Measured after training on the replica's final weights, in eval mode (no noise), on its whole training
part with its clean targets: tr ∇²L(w) for the mean training loss L the engine minimizes, estimated by
:func:`noisereg.curvature.hessian_trace` with ``samples`` Rademacher probes seeded from the replica's
seed (``derive_seed(seed, "hessian")``), so the estimate depends on the replica alone. Flat-minimum
claims (Anti-PGD, SAM, label-noise SGD) are claims about this number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from noisereg.curvature import hessian_trace
from noisereg.engine.losses import training_loss
from noisereg.engine.modules import ModuleSpec
from noisereg.engine.replicas import build_module
from noisereg.engine.specs import MLPSpec
from noisereg.seeding import derive_seed

__all__ = ["hessian_traces"]


def hessian_traces(
    spec: MLPSpec | ModuleSpec,
    loss: str,
    state: dict[str, Tensor],
    x_train: Tensor,
    q_train: Tensor,
    seeds: Sequence[int],
    samples: int,
) -> np.ndarray:
    """[R] Hutchinson estimates of tr ∇²L at each replica's weights ``{k: v[r] for k, v in state.items()}``;
    ``x_train`` [R, n, ...] and ``q_train`` [R, n, out] are the replicas' training inputs and targets."""
    out = np.empty(len(seeds))
    with torch.enable_grad(), torch.random.fork_rng(devices=[]):
        for r, seed in enumerate(seeds):
            module = build_module(spec) if isinstance(spec, MLPSpec) else spec.factory()
            replica = {k: v[r].detach().clone() for k, v in state.items()}
            module = module.to(dtype=next(iter(replica.values())).dtype)
            module.load_state_dict(replica, strict=True)
            module.eval()
            x, q = x_train[r], q_train[r].unsqueeze(0)

            def mean_loss(module: torch.nn.Module = module, x: Tensor = x, q: Tensor = q) -> Tensor:
                return training_loss(loss, module(x).transpose(0, 1).unsqueeze(0), q)[0]

            out[r] = hessian_trace(mean_loss, module, samples=samples, seed=derive_seed(seed, "hessian")).estimate
    return out
