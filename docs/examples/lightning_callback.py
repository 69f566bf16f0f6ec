"""How-to: NoiseCallback puts noise on a LightningModule for Trainer.fit, takes it off afterwards, and
resumes it from a checkpoint.

requires: lightning
"""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import noisereg
from noisereg.integrations import Attach
from noisereg.integrations.lightning import NoiseCallback
from noisereg.noise import Gaussian
from noisereg.schedules import Linear
from noisereg.sites import annealed_gaussian


class Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def noise() -> NoiseCallback:
    # One Attach per site; schedules read trainer.global_step, so a resumed fit continues them.
    return NoiseCallback(
        Attach(Gaussian(std=Linear(0.3, 0.05, steps=8)), at="activations", select=nn.ReLU, where="before"),
        Attach(annealed_gaussian(eta=0.01), at="gradients"),
        seed=0,
    )


def fit(epochs: int, folder: str, ckpt_path: str | None = None) -> Classifier:
    module = Classifier()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[noise(), ModelCheckpoint(dirpath=folder, save_last=True)],
        logger=False,  # with a logger, each strength is logged as e.g. noise/activations_before_model.1
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=16), ckpt_path=ckpt_path)
    return module


data = TensorDataset(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 2)
whole = fit(2, "whole")
print(noisereg.noise_layers(whole))  # [] : removed at teardown (after an exception too); clean weights
# The checkpoint holds the callback's noise streams: resuming epoch 2 draws the noise it drew before.
fit(1, "parts")
resumed = fit(2, "resumed", ckpt_path="parts/last.ckpt")
print(all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed.parameters(), strict=True)))  # True
