"""Target noise: label smoothing against noisy labels, DisturbLabel, and noisy regression targets.

Part 1 (digits): 30% of the training labels are flipped once, symmetrically (the stated rate is the
realized rate in expectation), then three models train on them: plain, with label smoothing
(torch's (1-ε)·y + ε/C) and with DisturbLabel (each step, labels redrawn over all classes with
probability α). Part 2 (diabetes): Gaussian noise on standardized regression targets.

Run: PYTHONPATH=src python examples/label_noise.py
"""

import torch
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from noisereg.noise import Gaussian
from noisereg.sites import DisturbLabel, LabelSmoothing, attach, flip_labels


def tensors(x, y, y_dtype):
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0)
    scaler = StandardScaler().fit(x_train)
    as_x = lambda a: torch.tensor(scaler.transform(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=y_dtype)  # noqa: E731
    return as_x(x_train), as_x(x_test), as_y(y_train), as_y(y_test)


def fit(model, x, y, loss_fn, targets=None, epochs=60):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=order).split(64):
            opt.zero_grad()
            target = y[batch] if targets is None else targets(y[batch])
            loss_fn(model(x[batch]), target).backward()
            opt.step()
    return model.eval()


def classification() -> None:
    x_train, x_test, y_train, y_test = tensors(*load_digits(return_X_y=True), torch.long)
    noisy = flip_labels(y_train, 0.3, num_classes=10, generator=torch.Generator().manual_seed(0))
    print(f"labels flipped: {(noisy != y_train).float().mean().item():.3f} (stated 0.300)")
    for name, kind in (
        ("plain", None),
        ("label smoothing 0.2", LabelSmoothing(0.2, num_classes=10)),
        ("DisturbLabel 0.1", DisturbLabel(0.1, num_classes=10)),
    ):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        targets = None if kind is None else attach(model, kind, at="targets", seed=0)
        fit(model, x_train, noisy, nn.functional.cross_entropy, targets)
        with torch.no_grad():
            print(f"{name:<20} test accuracy {(model(x_test).argmax(1) == y_test).float().mean().item():.3f}")


def regression() -> None:
    x_train, x_test, y_train, y_test = tensors(*load_diabetes(return_X_y=True), torch.float32)
    mean, std = y_train.mean(), y_train.std()
    y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
    for sigma in (0.0, 0.3):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 1), nn.Flatten(0))
        targets = attach(model, Gaussian(std=sigma), at="targets", seed=0) if sigma else None
        fit(model, x_train, y_train, nn.functional.mse_loss, targets, epochs=150)
        with torch.no_grad():
            error = nn.functional.mse_loss(model(x_test), y_test).item()
            print(f"target noise σ={sigma}: test MSE {error:.3f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    classification()
    regression()
