"""Shared helpers for the sites tests: tolerances derived from the sample size."""

from __future__ import annotations

import math

import torch


def binomial_ok(successes: int, trials: int, p: float, z: float = 6.0) -> bool:
    """Whether ``successes`` out of ``trials`` is within ``z`` binomial standard errors of ``p``."""
    se = math.sqrt(max(p * (1.0 - p), 1e-12) / trials)
    return abs(successes / trials - p) <= z * se


def six_se_var(samples: torch.Tensor, expected: float) -> tuple[float, float]:
    """Distance of the sample variance (about a known mean of 0) from ``expected``, and 6 SE of it."""
    s = samples.double().flatten()
    sq = s.square()
    return abs(sq.mean().item() - expected), 6.0 * sq.std().item() / math.sqrt(s.numel())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
