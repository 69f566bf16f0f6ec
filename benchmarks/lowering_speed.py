"""A user's MLP on the built-in engine's MLP kernels against the path it took before the kernels did.

Each case trains the same replicas twice in this process, on one thread, side by side and alternating
(``--repeat N`` pairs, after one epoch of each to warm up): once as ``train_vectorized`` trains them,
on the kernels (:mod:`noisereg.engine.lowering`), and once on the path such arms took before, ``vmap``
over ``functional_call`` (a ``VectorizedGroup``) or, for weight noise as increments, which ``vmap``
cannot do, the per-replica loop. Half the replicas have the case's noise, half none. Printed per case:
both times (median of the pairs), the ratio other / kernels, and the mean test accuracy of each side
(the paths train the same replicas: they agree to rounding).

Cases:

- ``own-class``: the case study's MLP 2→500→1 written as a class of the user's own (``forward`` with
  ``torch.relu``), on make_circles (30 train samples, one batch), Adam, input noise σ = 0.1, 60
  replicas × 300 epochs;
- ``gradients``: the case study's MLP as an ``nn.Sequential``, the same data, Neelakantan et al.'s
  annealed gradient noise (η = 0.01), 60 replicas × 300 epochs;
- ``anti-pgd``: the same MLP and data, Anti-PGD's anticorrelated weight increments (σ = 0.01);
- ``dropout``: scikit-learn's digits (1200 train samples, batches of 64), an MLP 64→128→10 with an
  ``nn.Dropout(0.2)`` after its ReLU, input noise σ = 0.1, 40 replicas × 20 epochs;
- ``other-kinds``: the digits MLP without dropout, uniform input noise (half width 0.2) and clipped
  Gaussian noise after the ReLU (σ = 0.2, clip ±3), 40 replicas × 20 epochs.

Run by hand::

    PYTHONPATH=src python benchmarks/lowering_speed.py --repeat 3
    PYTHONPATH=src python benchmarks/lowering_speed.py --repeat 3 --summary benchmarks/results/lowering_speed.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits, make_circles
from torch import nn

from noisereg import annealed_gaussian, noise
from noisereg.engine.loop import AttachSite, LoopResult, LoopTask, train_replica
from noisereg.engine.lowering import on_kernels
from noisereg.engine.vectorized import VectorizedGroup
from noisereg.engine.vectorized_training import _train, train_vectorized
from noisereg.study.bridge.user import make_loss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # provenance lives beside this file
from provenance import record  # noqa: E402


def _adam(params):  # one object for every task: a group's tasks share their settings
    return torch.optim.Adam(params, lr=1e-3)


def _grid_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 500), nn.ReLU(), nn.Linear(500, 1), nn.Flatten(0))


class GridMLP(nn.Module):
    """The case study's MLP as users write one: layers as attributes, a functional ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.out = nn.Linear(2, 500), nn.Linear(500, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)


def _digits_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def _dropout_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))


def _tasks(
    model: Callable[[], nn.Module],
    data: tuple,
    loss: str,
    sites: tuple[AttachSite, ...],
    replicas: int,
    epochs: int,
    batch_size: int,
) -> list[LoopTask]:
    train, test = data
    fn = make_loss(loss, "classification")[1]
    return [
        LoopTask(
            model=model,
            sites=sites if r % 2 else (),
            train=train,
            test=test,
            loss=fn,
            optimizer=_adam,
            epochs=epochs,
            batch_size=batch_size,
            task="classification",
            seed=r,
            eval_every=10,
        )
        for r in range(replicas)
    ]


def _circles() -> tuple:
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    return (x[:30], y[:30]), (x[30:], y[30:])


def _digits() -> tuple:
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


def cases(scale: float) -> dict[str, tuple[str, list[LoopTask]]]:
    """name -> (the other path, the tasks); ``scale`` multiplies the epochs (a quick look)."""
    circles, digits = _circles(), _digits()
    grid_epochs, digits_epochs = max(1, round(300 * scale)), max(1, round(20 * scale))
    uniform = AttachSite(noise.Uniform(half_width=0.2), "input", ())
    clipped = AttachSite(noise.Gaussian(std=0.2, clip=(-3.0, 3.0)), "activations", (("select", nn.ReLU),))
    walk = AttachSite(noise.Gaussian(std=0.01), "weights", (("increments", "anticorrelated"),))
    gradients = AttachSite(annealed_gaussian(0.01), "gradients", ())
    inputs = AttachSite(noise.Gaussian(std=0.1), "input", ())
    return {
        "own-class": ("vmap", _tasks(GridMLP, circles, "bce", (inputs,), 60, grid_epochs, 32)),
        "gradients": ("vmap", _tasks(_grid_mlp, circles, "bce", (gradients,), 60, grid_epochs, 32)),
        "anti-pgd": ("per-replica", _tasks(_grid_mlp, circles, "bce", (walk,), 60, grid_epochs, 32)),
        "dropout": ("vmap", _tasks(_dropout_mlp, digits, "ce", (inputs,), 40, digits_epochs, 64)),
        "other-kinds": ("vmap", _tasks(_digits_mlp, digits, "ce", (uniform, clipped), 40, digits_epochs, 64)),
    }


def _other(path: str, tasks: list[LoopTask]) -> list[LoopResult]:
    if path == "per-replica":
        return [train_replica(task) for task in tasks]
    group = VectorizedGroup(tasks)
    try:
        return _train(group)
    finally:
        group.close()


def _timed(fn: Callable[[], list[LoopResult]]) -> tuple[float, float]:
    start = time.perf_counter()
    results = fn()
    return time.perf_counter() - start, float(np.mean([r.final["test_acc"] for r in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="pairs per case, alternating the paths")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's epochs (a quick look)")
    parser.add_argument("--cases", nargs="+", default=None, help="a subset of the cases")
    parser.add_argument("--summary", type=Path, help="store the rows and their provenance (JSON) in this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    rows = []
    for name, (path, tasks) in cases(args.scale).items():
        if args.cases and name not in args.cases:
            continue
        if not all(on_kernels(tasks)):
            raise SystemExit(f"{name}: the kernels do not take these replicas")
        warm = [dataclasses.replace(task, epochs=1) for task in tasks]  # compiled kernels, first allocations
        train_vectorized(warm)
        _other(path, warm)
        kernels, other = [], []
        for _ in range(args.repeat):
            kernels.append(_timed(lambda tasks=tasks: train_vectorized(tasks)))
            other.append(_timed(lambda tasks=tasks, path=path: _other(path, tasks)))
        k_s, o_s = statistics.median(t for t, _ in kernels), statistics.median(t for t, _ in other)
        row = {
            "case": name,
            "replicas": len(tasks),
            "epochs": tasks[0].epochs,
            "kernels_s": round(k_s, 3),
            "other": path,
            "other_s": round(o_s, 3),
            "ratio": round(o_s / k_s, 2),
            "accuracy": f"{kernels[0][1]:.4f} / {other[0][1]:.4f}",
        }
        rows.append(row)
        print(
            f"{name}: {row['replicas']} replicas x {row['epochs']} epochs: kernels {k_s:.2f} s, {path} {o_s:.2f} s "
            f"(ratio {row['ratio']:.2f}); mean test accuracy {row['accuracy']}",
            flush=True,
        )
    if args.summary:
        setup = (
            "Each case's replicas (half with the case's noise, half none) trained in one process on one "
            f"thread, on the MLP kernels and on the path such arms took before, alternating, {args.repeat} "
            "pairs, medians; accuracy: mean test accuracy, kernels / the other path"
        )
        out = record("lowering_speed.py", started=started, setup=setup, rows=rows)
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
