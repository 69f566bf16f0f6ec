"""Annealed gradient noise (Neelakantan et al. 2015) on a deep, narrow MLP: breast-cancer data.

g̃ = g + N(0, σ_t²), σ_t² = η / (1 + t)^0.55, added before each optimizer step by a step pre-hook on
the user's own optimizer; t counts optimizer steps. The paper's η grid is {0.01, 0.3, 1.0}.

Run: PYTHONPATH=src python examples/gradient_noise.py
"""

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from noisereg.sites import annealed_gaussian, attach, describe


def deep_mlp(width: int = 32, depth: int = 12) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(30, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 2))


def main() -> None:
    torch.set_num_threads(2)
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_train, x_test))
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
    for eta in (None, 0.01, 0.3):
        torch.manual_seed(0)
        model = deep_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if eta is not None:
            attach(model, annealed_gaussian(eta), at="gradients", optimizer=opt, seed=0)
        order = torch.Generator().manual_seed(0)
        for _ in range(40):
            for batch in torch.randperm(len(y_train), generator=order).split(32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
                opt.step()
        with torch.no_grad():
            test = (model.eval()(x_test).argmax(1) == y_test).float().mean().item()
        if eta is not None:
            print(describe(model))
        print(f"eta={eta}: test accuracy {test:.3f}\n")


if __name__ == "__main__":
    main()
