"""The Hessian trace of a trained replica's clean training loss: what flat-minimum claims measure."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from noisereg.curvature import hessian_trace
from noisereg.engine import MLPSpec, build_module
from noisereg.seeding import derive_seed
from noisereg.study.bridge.prepare import Prepared

__all__ = ["training_hessian_trace"]


def training_hessian_trace(
    prep: Prepared, fold: int, state: dict[str, torch.Tensor], *, probes: int, seed: int
) -> float:
    """Hutchinson's estimate of tr ∇²L at the weights ``state``, L the study's loss (mean over the
    fold's training rows, clean: no noise, eval mode), in float64, with ``probes`` Rademacher vectors
    seeded by ``derive_seed(seed, "hessian_trace")``."""
    with torch.random.fork_rng(devices=[]):  # the module's own initialization is overwritten below
        module = build_module(prep.model) if isinstance(prep.model, MLPSpec) else prep.model.factory()
    module = module.to(dtype=torch.float64)
    module.load_state_dict({k: v.to(torch.float64) for k, v in state.items()}, strict=True)
    module.eval()
    part = prep.folds[fold]
    x = torch.as_tensor(part.x_train, dtype=torch.float64)
    if prep.loss == "ce":
        y = torch.as_tensor(part.y_train, dtype=torch.long)

        def loss() -> torch.Tensor:
            return F.cross_entropy(module(x), y)
    elif prep.loss == "bce":
        y = torch.as_tensor(part.y_train, dtype=torch.float64)

        def loss() -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(module(x).reshape(-1), y.reshape(-1))
    else:
        y = torch.as_tensor(part.y_train, dtype=torch.float64)

        def loss() -> torch.Tensor:
            out = module(x)
            return F.mse_loss(out, y.reshape(out.shape))

    return hessian_trace(loss, module, samples=probes, seed=derive_seed(seed, "hessian_trace")).estimate
