"""A denoising autoencoder (Vincent et al. 2010) on digits: (corrupted, clean) pairs from any noise kind.

DenoisingDataset wraps the digit images and yields (Gaussian-corrupted image clipped to [0, 1], clean
image), with noise seeded per epoch and item; ``set_epoch`` gives new noise each epoch. The plain
autoencoder sees clean inputs. Both are scored on corrupted test images against the clean ones.

Run: PYTHONPATH=src python examples/denoising_autoencoder.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader

from noisereg.noise import Gaussian
from noisereg.sites.denoising import DenoisingDataset

NOISE = Gaussian(std=0.3, clip=(0.0, 1.0))


def autoencoder() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())


def main() -> None:
    torch.set_num_threads(2)
    images = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    train, test = train_test_split(images, test_size=0.3, random_state=0)
    corrupted_test = NOISE(test, generator=torch.Generator().manual_seed(123))
    for denoising in (False, True):
        torch.manual_seed(0)
        model = autoencoder()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        pairs = DenoisingDataset(train, NOISE, seed=0) if denoising else None
        for epoch in range(40):
            if pairs is not None:
                pairs.set_epoch(epoch)
            loader = DataLoader(
                pairs if denoising else list(zip(train, train, strict=True)),
                batch_size=64,
                shuffle=True,
                generator=torch.Generator().manual_seed(epoch),
            )
            for noisy, clean in loader:
                opt.zero_grad()
                nn.functional.mse_loss(model(noisy), clean).backward()
                opt.step()
        with torch.no_grad():
            error = nn.functional.mse_loss(model(corrupted_test), test).item()
        name = "denoising" if denoising else "plain"
        print(f"{name:<10} autoencoder: MSE on corrupted test images {error:.4f}")
    print(f"doing nothing (corrupted vs clean): {nn.functional.mse_loss(corrupted_test, test).item():.4f}")


if __name__ == "__main__":
    main()
