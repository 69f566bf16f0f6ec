"""How-to: the model factory and the data loader that a study file names by import path.

A study file's ``[model] factory = "own_nets:make_net"`` and ``[data] loader = "own_nets:load"``
(docs/examples/own_model_study.toml) import this module: it must be importable where the study runs,
installed or on ``PYTHONPATH``.
"""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.fc, self.act, self.head = nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)))


def make_net(width: int = 32) -> nn.Module:
    """A fresh model; the study calls it once per replica, under the replica's seeded generator."""
    return Net(width)


def load(n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    """The data: (x, y) here; a Dataset or {"train": ..., "test": ...} work too."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    return x, (x[:, 0] * x[:, 1] > 0).long()
