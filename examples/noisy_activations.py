"""Noisy hard-saturating activations (Gulcehre et al. 2016) as drop-in modules: digits.

A hard-tanh MLP saturates easily (zero gradient for |x| > 1). NoisyHardTanh adds noise only where
the unit saturates, pointing back toward the linear regime, with a learned slope p and a noise scale
c that here anneals from 1 to 0.1 over training; in eval the noise is replaced by its expectation.

Run: PYTHONPATH=src python examples/noisy_activations.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from noisereg.schedules import Linear
from noisereg.sites.noisy_activations import NoisyHardTanh

EPOCHS, BATCHES = 20, 15


def model(noisy: bool) -> nn.Sequential:
    def act(seed: int) -> nn.Module:  # each noisy layer its own stream
        annealed = Linear(1.0, 0.1, steps=EPOCHS * BATCHES)
        return NoisyHardTanh(c=annealed, seed=seed) if noisy else nn.Hardtanh()

    return nn.Sequential(nn.Linear(64, 128), act(1), nn.Linear(128, 128), act(2), nn.Linear(128, 10))


def main() -> None:
    torch.set_num_threads(2)
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y), test_size=0.5, random_state=0
    )  # raw pixel values 0..16: large pre-activations, so hard tanh saturates
    for noisy in (False, True):
        torch.manual_seed(0)
        net = model(noisy)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        order = torch.Generator().manual_seed(0)
        for _ in range(EPOCHS):
            net.train()
            for batch in torch.randperm(len(y_train), generator=order).split(len(y_train) // BATCHES + 1):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x_train[batch]), y_train[batch]).backward()
                opt.step()
        with torch.no_grad():
            test = (net.eval()(x_test).argmax(1) == y_test).float().mean().item()
        print(f"{'NoisyHardTanh' if noisy else 'Hardtanh':<14} test accuracy {test:.3f}")


if __name__ == "__main__":
    main()
