"""One training across processes with DDP and noise that differs on every rank.

    torchrun --nproc_per_node=2 examples/ddp_noise.py

Each rank trains on its shard of make_moons with Gaussian input and hidden noise; noise streams are
derived per (seed, rank, layer), the initialization is identical on every rank, and DDP averages the
gradients as usual. Uses the gloo backend so it runs on CPUs; use "nccl" on GPUs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from sklearn.datasets import make_moons
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import noisereg

SEED = 0


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x, y = make_moons(n_samples=400, noise=0.2, random_state=SEED)
    x = torch.tensor(x, dtype=torch.float32)[rank::world]
    y = torch.tensor(y, dtype=torch.float32)[rank::world, None]

    torch.manual_seed(SEED)  # identical initialization on every rank
    model = nn.Sequential(
        noisereg.GaussianNoise(0.1),
        nn.Linear(2, 64),
        nn.ReLU(),
        noisereg.GaussianNoise(0.1),
        nn.Linear(64, 1),
    )
    noisereg.distributed.seed_per_rank(model, SEED)  # different noise on each rank, reproducible
    ddp = DistributedDataParallel(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(ddp(x), y).backward()
        opt.step()
    ddp.eval()
    with torch.no_grad():
        acc = ((ddp(x) > 0).float() == y).float().mean()
    print(f"rank {rank}/{world}: train accuracy on its shard {acc.item():.3f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
