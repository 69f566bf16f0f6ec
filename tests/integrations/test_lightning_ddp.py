"""NoiseCallback under a real Lightning DDP Trainer: two gloo processes on CPU.

Each rank draws its own noise (streams differ across ranks), a rerun draws the same noise on each
rank, the ranks' weights stay identical (gradient noise is added after DDP's average, the same on
every rank), and every rank ends its fit without noise.

The two processes are started once, as a launcher such as ``torchrun`` would (Lightning then uses
them instead of starting its own), and each runs ``Trainer(strategy="ddp", devices=2).fit`` twice:
one start of torch and Lightning per rank instead of one per rank and fit.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from noisereg import noise_layers
from noisereg.integrations import Attach
from noisereg.integrations.lightning import NoiseCallback
from noisereg.noise import Gaussian
from noisereg.sites import annealed_gaussian

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"
)
STEPS = 3


class Tiny(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Record(Callback):
    """In each rank: the activation noise drawn per step, the weights and what is left after the fit."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_fit_start(self, trainer, pl_module):
        self.noise: list[torch.Tensor] = []
        (layer,) = [m for m in noise_layers(pl_module) if m.kind.std == 0.5]
        layer.register_forward_hook(lambda _m, args, y: self.noise.append((y - args[0]).detach().clone()))

    def teardown(self, trainer, pl_module, stage):  # runs after NoiseCallback's (listed first)
        left = noise_layers(pl_module) or any(m._forward_hooks for m in pl_module.modules())
        torch.save(
            {"noise": self.noise, "weights": [p.detach().clone() for p in pl_module.parameters()], "left": bool(left)},
            self.out / f"rank{trainer.global_rank}.pt",
        )


def _fit(out: Path) -> None:
    """One DDP fit in this rank's process, recording into ``out``."""
    noise = NoiseCallback(
        Attach(Gaussian(std=0.5), at="activations", select=nn.ReLU),
        Attach(annealed_gaussian(0.01), at="gradients"),
        seed=3,
        log=False,
    )
    x = torch.linspace(-1, 1, 24).reshape(8, 3)
    loader = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(
            strategy="ddp",
            accelerator="cpu",
            devices=2,
            max_steps=STEPS,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=out,
            callbacks=[noise, Record(out)],
        )
        trainer.fit(Tiny(), loader)


def _rank(rank: int, port: int, root: Path) -> None:
    # what a launcher sets: Lightning's environment then uses these processes
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        NODE_RANK="0",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    for run in ("first", "again"):
        (root / run).mkdir(exist_ok=True)
        _fit(root / run)
    # Lightning leaves its process group for a next fit; one still alive at exit can abort the rank
    # ("terminate called without an active exception": gloo's threads outlive the interpreter)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_draw_their_own_noise_repeatably_and_end_clean(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(_free_port(), tmp_path), nprocs=2, join=True)
    first, again = ([torch.load(tmp_path / run / f"rank{r}.pt") for r in range(2)] for run in ("first", "again"))
    for rank in first + again:
        assert len(rank["noise"]) == STEPS and not rank["left"]
    # per-rank streams: the two ranks' noise differs at every step
    assert all(not torch.equal(a, b) for a, b in zip(first[0]["noise"], first[1]["noise"], strict=True))
    # a rerun draws each rank's noise again, exactly
    for before, after in zip(first, again, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(before["noise"], after["noise"], strict=True))
    # DDP keeps the replicas identical: the gradient noise is the same on both ranks
    assert all(torch.equal(a, b) for a, b in zip(first[0]["weights"], first[1]["weights"], strict=True))
