"""How-to: input noise with NoiseCallback sits on the LightningModule's own forward: call self(x).

requires: lightning
"""

import warnings

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from noisereg.integrations import Attach
from noisereg.integrations.lightning import NoiseCallback
from noisereg.noise import Gaussian


class Regressor(L.LightningModule):
    def __init__(self, through_self: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
        self.through_self = through_self

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        # self(x) runs the LightningModule's forward, where the input noise is; self.model(x) skips it.
        prediction = self(x) if self.through_self else self.model(x)
        return nn.functional.mse_loss(prediction, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
for through_self in (True, False):
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[NoiseCallback(Attach(Gaussian(std=0.1), at="input"), seed=0)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Regressor(through_self), data)
    # self(x): no warning. self.model(x): an UnusedNoiseWarning at the end of the epoch, naming the
    # place ("input before the model") and this cause.
    print(through_self, [str(w.message) for w in caught if w.category.__name__ == "UnusedNoiseWarning"])
