"""An importable model factory and data loader for study files of one's own model: workers in other
processes import them by path (``tests.study.own_model_factories:make_net``)."""

from __future__ import annotations

import torch
from torch import nn


def make_net(width: int = 16) -> nn.Module:
    """A small MLP for two features and two classes, with a named activation for hidden noise."""
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2))


def load(n: int = 64, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Two noisy interleaved classes: the first half of ``n`` samples trains, the rest tests."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = ((x[:, 0] * x[:, 1] + 0.3 * torch.randn(n, generator=g)) > 0).long()
    half = n // 2
    return {"train": (x[:half], y[:half]), "test": (x[half:], y[half:])}
