"""A training run with noise at every kind of place, resumable from a checkpoint file.

``python -m tests.sites.checkpoint_run START STOP DIR``: builds the model, its noise and optimizer,
loads ``DIR/checkpoint.pt`` when START > 0, trains steps START..STOP-1, then saves the checkpoint
(model, optimizer and every handle's noise state) and the final parameters to ``DIR``. The test runs
it in fresh interpreters, so nothing but the checkpoint carries state from one part to the next.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from noisereg import attach
from noisereg.layers import GaussianNoise, NoiseLayer, bind_clock
from noisereg.noise import Gaussian, Uniform
from noisereg.schedules import Linear
from noisereg.sites import NoisyLinear, annealed_gaussian


def build() -> tuple[nn.Module, torch.optim.Optimizer, list]:
    torch.manual_seed(0)
    model = nn.Sequential(
        GaussianNoise(Linear(start=0.3, end=0.0, steps=20), seed=1),
        nn.Linear(3, 16),
        nn.ReLU(),
        NoisyLinear(16, 8, seed=2, resample="manual"),
        nn.Tanh(),
        nn.Linear(8, 2),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    handles = [
        attach(model, Uniform(Linear(start=0.2, end=0.05, steps=20)), at="activations", select=nn.ReLU, seed=3),
        attach(model, Gaussian(std=0.05), at="weights", select="5.weight", resample="manual", seed=4),
        attach(model, annealed_gaussian(eta=0.01), at="gradients", optimizer=optimizer, seed=5),
    ]
    return model, optimizer, handles


def main(start: int, stop: int, folder: Path) -> None:
    model, optimizer, handles = build()
    clock = bind_clock(model)
    if start > 0:
        saved = torch.load(folder / "checkpoint.pt", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for handle, state in zip(handles, saved["noise"], strict=True):
            handle.load_state_dict(state)
    data = torch.Generator().manual_seed(6)
    x, y = torch.randn(64, 3, generator=data), torch.randn(64, 2, generator=data)
    model.train()
    for step in range(start, stop):
        batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        optimizer.step()
    if clock.step != stop:
        raise RuntimeError(f"the clock is at {clock.step}, expected {stop}")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "noise": [h.state_dict() for h in handles]},
        folder / "checkpoint.pt",
    )
    layers = [m for m in model.modules() if isinstance(m, NoiseLayer)]
    torch.save(
        {
            "parameters": [p.detach().clone() for p in model.parameters()],
            "applied": [layer.applied for layer in layers] + [h.layers[0].applied for h in handles],
        },
        folder / "final.pt",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
