"""mixup and CutMix on digit images in the user's loop: ``x, y = mix(x, y)`` gives soft targets.

Both are attached as target noise, so they mix only while the model is in training mode. The small
CNN trains on half of the 8x8 digits; odd last batches are fine (pairs come from a permutation).

Run: PYTHONPATH=src python examples/mixup_cutmix.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from noisereg.sites import CutMix, Mixup, attach


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )


def main() -> None:
    torch.set_num_threads(2)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(x, torch.tensor(y), train_size=0.3, random_state=0)
    for name, kind in (
        ("plain", None),
        ("mixup 0.4", Mixup(0.4, num_classes=10)),
        ("CutMix 1.0", CutMix(1.0, num_classes=10)),
    ):
        torch.manual_seed(0)
        model = cnn()
        mix = None if kind is None else attach(model, kind, at="targets", seed=0)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        order = torch.Generator().manual_seed(0)
        for _ in range(30):
            model.train()
            for batch in torch.randperm(len(y_train), generator=order).split(50):  # last batch: 39
                inputs, targets = x_train[batch], y_train[batch]
                if mix is not None:
                    inputs, targets = mix(inputs, targets)
                opt.zero_grad()
                nn.functional.cross_entropy(model(inputs), targets).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            print(f"{name:<10} test accuracy {(model(x_test).argmax(1) == y_test).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
