"""Scores of a cross-validation replica on its held-out part that the engine does not compute: the
Brier score and the log-loss after temperature scaling (inputs of :mod:`noisereg.study.selection`).

Classifiers only; regression's selection scores (squared error) come from the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import optimize

from noisereg import metrics
from noisereg.engine import MLPSpec, build_module
from noisereg.study.bridge.prepare import Prepared

__all__ = ["held_out_logits", "brier", "calibrated_losses"]

_LOG_T = (-5.0, 8.0)  # temperatures from e^-5 to e^8: from sharpening to a flat prediction


def held_out_logits(prep: Prepared, fold: int, state: dict[str, torch.Tensor]) -> np.ndarray:
    """Outputs [n, out] of the model with weights ``state`` on fold ``fold``'s held-out inputs."""
    with torch.random.fork_rng(devices=[]):  # the module's own initialization is overwritten below
        module = build_module(prep.model) if isinstance(prep.model, MLPSpec) else prep.model.factory()
    dtype = next(iter(state.values())).dtype
    module = module.to(dtype=dtype)
    module.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = module.eval()(torch.as_tensor(prep.folds[fold].x_test, dtype=dtype))
    return out.double().reshape(out.shape[0], -1).numpy()


def brier(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean Brier score Σ_c (p_c − 1[y = c])² of outputs [n, out] (one output: a binary logit)."""
    return metrics.brier_score(torch.as_tensor(logits), torch.as_tensor(labels, dtype=torch.long), from_logits=True)


def calibrated_losses(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Per-part log-loss of logits / T, with one temperature T that minimizes the log-loss of all
    ``parts`` ((logits, labels) pairs) pooled; T is searched in [e^-5, e^8] on a log scale."""
    logits = torch.as_tensor(np.concatenate([z for z, _ in parts]))
    labels = torch.as_tensor(np.concatenate([y for _, y in parts]), dtype=torch.long)

    def pooled(log_t: float) -> float:
        return metrics.nll(logits / float(np.exp(log_t)), labels, from_logits=True)

    t = float(np.exp(optimize.minimize_scalar(pooled, bounds=_LOG_T, method="bounded").x))
    return [
        metrics.nll(torch.as_tensor(z) / t, torch.as_tensor(y, dtype=torch.long), from_logits=True) for z, y in parts
    ]
