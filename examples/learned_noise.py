"""Learned noise scales, swapped into a model: factorised NoisyLinear (NoisyNet) and PNI (digits).

``NoisyLinear.from_linear`` keeps a trained layer's weights as the means and learns σ (σ₀ = 0.5);
``PNI(module)`` adds α·N(0, std(W)²) to a module's weight with α learned from 0.25. Both are noise
layers: off in eval mode (NoisyLinear uses its mean weights), listed by ``describe``.

Run: PYTHONPATH=src python examples/learned_noise.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from noisereg.sites import describe
from noisereg.sites.learned import PNI, NoisyLinear


def main() -> None:
    torch.set_num_threads(2)
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, train_size=200, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_train, x_test))
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
    for name in ("plain", "NoisyLinear", "PNI"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        if name == "NoisyLinear":
            model[0] = NoisyLinear.from_linear(model[0], sigma0=0.5, seed=0)
        elif name == "PNI":
            model[0] = PNI(model[0], seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(200):
            model.train()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train), y_train).backward()
            opt.step()
        with torch.no_grad():
            test = (model.eval()(x_test).argmax(1) == y_test).float().mean().item()
        print(f"{name:<12} test accuracy {test:.3f}")
        if name != "plain":
            print(describe(model))


if __name__ == "__main__":
    main()
