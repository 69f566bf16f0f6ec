import math

import torch


def six_se_mean(samples: torch.Tensor, expected: float) -> tuple[float, float]:
    """Observed mean and a 6-standard-error bound for comparing it with ``expected``."""
    s = samples.double().flatten()
    return abs(s.mean().item() - expected), 6.0 * s.std().item() / math.sqrt(s.numel())


def six_se_var(samples: torch.Tensor, expected: float) -> tuple[float, float]:
    """Observed variance's distance from ``expected`` and a 6-standard-error bound (from the 4th moment)."""
    s = samples.double().flatten()
    centred = s - s.mean()
    var = centred.square().mean()
    m4 = centred.pow(4).mean()
    se = math.sqrt(max((m4 - var**2).item(), 0.0) / s.numel())
    return abs(var.item() - expected), 6.0 * se
