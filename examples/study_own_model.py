"""A study of your own model: a small ResNet-style CNN on scikit-learn's digits, four noise arms, a report.

    python examples/study_own_model.py --out runs/own-cnn            # 10 seeds x 5 folds, a few minutes
    python examples/study_own_model.py --seeds 2 --folds 2 --epochs 2 # a quick look

Each arm is a list of sites in the vocabulary of ``noisereg.attach`` (``at``, ``select``, ``where``);
every replica is a fresh model seeded from its replica seed, with its own noise streams. The run
directory gets the store (resumable), summary.json / summary.md, report.html and plots.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

from noisereg import noise, study


class Block(nn.Module):
    """x + conv(act(conv(x))): a residual block whose activation is a named module (a noise site)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(self.act(self.conv1(x))))


class SmallResNet(nn.Module):
    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(Block(channels), Block(channels))
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(x.reshape(-1, 1, 8, 8))))
        return self.head(h.mean(dim=(2, 3)))


def main(out: str | Path, *, seeds: int = 10, folds: int = 5, epochs: int = 30, workers: int = 2) -> study.StudyResult:
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)  # pixels in [0, 1]
    y = torch.tensor(digits.target)
    result = study.run_model(
        model=SmallResNet,
        data=(x, y),
        loss=nn.CrossEntropyLoss(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
        epochs=epochs,
        batch_size=64,
        seeds=seeds,
        folds=folds,
        arms={
            "no noise": [],
            "input": [study.site(noise.Gaussian(std=0.1), at="input")],
            "blocks": [study.site(noise.Gaussian(std=0.1), at="activations", select="blocks.*.act", where="before")],
            "weights": [study.site(noise.Gaussian(std=0.01), at="weights", select="head.weight")],
        },
        grid={"blocks": [0.03, 0.1, 0.3]},
        eval_every=max(1, epochs // 10),
        workers=workers,
        out=out,
    )
    print(result.table())
    print("report:", result.report())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/own-cnn")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    main(args.out, seeds=args.seeds, folds=args.folds, epochs=args.epochs, workers=args.workers)
