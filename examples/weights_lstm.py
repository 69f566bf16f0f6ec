"""Weight noise on an LSTM (Graves 2013), plus input noise: digits read row by row.

Each 8x8 digit is a sequence of 8 rows of 8 pixels. The LSTM's weights take Gaussian noise drawn once
per training forward and held for the whole sequence batch (``resample="step"``); gradients are taken
at the noisy weights and applied to the clean ones, and the state dict stays clean, so the best epoch's
checkpoint (early stopping on a validation split, as Graves 2011 advises with weight noise) is an
ordinary state dict.

Run: PYTHONPATH=src python examples/weights_lstm.py
"""

import copy

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from noisereg.noise import Gaussian
from noisereg.sites import attach, describe


class RowLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 48, batch_first=True)
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def split() -> list[torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 8, 8)
    y = torch.tensor(digits.target)
    x_fit, x_test, y_fit, y_test = train_test_split(x, y, test_size=0.4, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x_fit, y_fit, test_size=0.25, random_state=0)
    return [x_train, y_train, x_val, y_val, x_test, y_test]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(noisy: bool, data: list[torch.Tensor], epochs: int = 25) -> tuple[float, int]:
    x_train, y_train, x_val, y_val, x_test, y_test = data
    torch.manual_seed(0)
    model = RowLSTM()
    if noisy:
        attach(model, Gaussian(std=0.05), at="weights", select="lstm.weight_*", resample="step", seed=0)
        attach(model, Gaussian(std=0.1), at="input", seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(0)
    best = (-1.0, 0, None)
    for epoch in range(epochs):
        model.train()
        for batch in torch.randperm(len(y_train), generator=order).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
            opt.step()
        val = accuracy(model, x_val, y_val)
        if val > best[0]:
            best = (val, epoch, copy.deepcopy(model.state_dict()))  # clean weights, usual key names
    if noisy:
        print(describe(model))
    clean_model = RowLSTM()
    clean_model.load_state_dict(best[2])
    return accuracy(clean_model, x_test, y_test), best[1]


if __name__ == "__main__":
    torch.set_num_threads(2)
    data = split()
    for noisy in (False, True):
        test, epoch = train(noisy, data)
        name = "weight + input noise" if noisy else "no noise"
        print(f"{name:<20} best epoch {epoch:2d}  test accuracy {test:.3f}")
