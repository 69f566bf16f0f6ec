"""How-to: noise in a Lightning training loop, with attach on the wrapped model.

requires: lightning
"""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import noisereg
from noisereg import noise


class Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
        # Lightning switches train()/eval() itself: the noise is on in training_step only.
        self.noise = noisereg.attach(
            self.model, noise.Gaussian(std=0.1), at="activations", select=nn.ReLU, where="before", seed=0
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


data = TensorDataset(torch.randn(64, 2), torch.randint(0, 2, (64,)))
module = Classifier()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(module, DataLoader(data, batch_size=16))
print(noisereg.describe(module.model))
module.noise.remove()  # a clean model to export
