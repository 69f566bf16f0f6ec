"""How-to: NoiseCallback puts noise on a LightningModule for Trainer.fit and takes it off afterwards.

requires: lightning
"""

import lightning as L
import torch
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
        self.model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


# One Attach per site; schedules read trainer.global_step, so a resumed fit continues them.
noise = NoiseCallback(
    Attach(Gaussian(std=Linear(0.3, 0.05, steps=8)), at="activations", select=nn.ReLU, where="before"),
    Attach(annealed_gaussian(eta=0.01), at="gradients"),
    seed=0,
)
data = TensorDataset(torch.randn(64, 2), torch.randint(0, 2, (64,)))
module = Classifier()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    callbacks=[noise],
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(module, DataLoader(data, batch_size=16))
print(noisereg.noise_layers(module))  # [] : the noise was removed at teardown; the weights are clean
