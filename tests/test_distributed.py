"""Two real gloo processes: noise differs across ranks, reruns repeat, DDP averages gradients."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import noisereg
from noisereg.distributed import seed_per_rank

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model() -> nn.Sequential:
    return nn.Sequential(noisereg.GaussianNoise(0.5), nn.Linear(3, 4), noisereg.GaussianNoise(0.5), nn.Linear(4, 1))


def _worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    torch.manual_seed(0)
    model = _model()
    init = [p.detach().clone() for p in model.parameters()]
    seed_per_rank(model, seed=7)
    ddp = DistributedDataParallel(model)
    x = torch.ones(5, 3)
    seen = []
    model[0].register_forward_hook(lambda _m, _i, y: seen.append(y.detach() - x))
    ddp(x).sum().backward()
    noise_seen = seen[0]
    local = [p.grad.clone() for p in model.parameters()]  # DDP replaced these with the averages
    # Recompute this rank's own gradient without DDP at the same noise to compare with the average.
    replay = _model()
    replay.load_state_dict(model.state_dict())
    seed_per_rank(replay, seed=7)
    replay(x).sum().backward()
    out[rank] = {
        "init": init,
        "noise": noise_seen,
        "avg_grad": local,
        "own_grad": [p.grad.clone() for p in replay.parameters()],
    }
    dist.destroy_process_group()


def _run() -> dict:
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
    return dict(out)


@pytest.fixture(scope="module")
def two_runs() -> tuple[dict, dict]:
    return _run(), _run()


def test_ranks_draw_different_noise(two_runs):
    first, _ = two_runs
    assert not torch.equal(first[0]["noise"], first[1]["noise"])


def test_reruns_draw_the_same_noise(two_runs):
    first, second = two_runs
    for rank in range(WORLD):
        assert torch.equal(first[rank]["noise"], second[rank]["noise"])


def test_initialization_identical_across_ranks(two_runs):
    first, _ = two_runs
    for a, b in zip(first[0]["init"], first[1]["init"], strict=True):
        assert torch.equal(a, b)


def test_gradients_are_the_average_of_the_ranks(two_runs):
    first, _ = two_runs
    for g0, g1, a0, a1 in zip(
        first[0]["own_grad"], first[1]["own_grad"], first[0]["avg_grad"], first[1]["avg_grad"], strict=True
    ):
        torch.testing.assert_close(a0, (g0 + g1) / 2)
        torch.testing.assert_close(a1, a0)


def test_seed_per_rank_names_layers_and_refuses_empty_models():
    seeds = seed_per_rank(_model(), seed=1, rank=0)
    assert set(seeds) == {"0", "2"} and len(set(seeds.values())) == 2
    assert seed_per_rank(_model(), seed=1, rank=1) != seeds
    with pytest.raises(ValueError, match="no noise"):
        seed_per_rank(nn.Linear(2, 2), seed=1)
