"""Noise streams for multi-process training (torchrun + DistributedDataParallel).

The same seed on every rank gives every rank the same noise, so the ranks' gradients share their
noise and averaging them removes none of it: the effective batch sees one noise draw repeated. Here
each noise layer's stream is derived from (seed, layer name, rank), as attached noise derives its own
under a process group (:func:`noisereg.seeding.rank_seed`):

    layer seed = rank_seed(seed, qualified name of the layer, rank=rank)

so noise differs across ranks and layers, and a rerun with the same seed and world size draws the
same noise. Model initialization stays identical across ranks (DDP broadcasts rank 0's parameters
at construction; seed torch's global generator with the same seed on every rank too).

Recipe (see examples/ddp_noise.py), launched with ``torchrun --nproc_per_node=2 script.py``::

    torch.distributed.init_process_group("gloo")          # "nccl" on GPUs
    torch.manual_seed(seed)                               # identical initialization on every rank
    model = build_model()                                 # with noisereg layers or attached noise
    noisereg.distributed.seed_per_rank(model, seed)       # before wrapping in DDP
    model = DistributedDataParallel(model)
"""

from __future__ import annotations

from torch import nn

from noisereg.layers import NoiseLayer, registry
from noisereg.seeding import check_seed, current_rank, rank_seed
from noisereg.sites.selectors import unwrap

__all__ = ["seed_per_rank", "current_rank"]


def seed_per_rank(model: nn.Module, seed: int, rank: int | None = None) -> dict[str, int]:
    """Give every noise layer of ``model`` its own stream for this rank; return {layer name: seed}.

    ``rank`` defaults to the rank of the initialized process group (0 without one). DDP,
    DataParallel and ``torch.compile`` wrappers are unwrapped first (:func:`noisereg.sites.selectors.unwrap`). Noise attached beside a module is named
    ``"<module name>@<index>"``. Raises ``ValueError`` if the model holds no noise.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    root = check_seed(seed)
    rank = current_rank() if rank is None else check_seed(rank, name="rank")
    seeds: dict[str, int] = {}
    for name, module in unwrap(model).named_modules():
        layers = ([(name or "<root>", module)] if isinstance(module, NoiseLayer) else []) + [
            (f"{name or '<root>'}@{i}", layer) for i, layer in enumerate(registry.beside(module))
        ]
        for key, layer in layers:
            seeds[key] = rank_seed(root, key, rank=rank)
            layer.reseed(seeds[key])
    if not seeds:
        raise ValueError("seed_per_rank found no noise in the model: add noisereg layers or attach noise first")
    return seeds
