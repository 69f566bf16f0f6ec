"""Cost of a training step with random weight perturbation (RWP) and with SAM, side by side in one run.

The setting of the built-in study ``rwp-sam``: scikit-learn's digits (500 training rows, 64 features),
MLP 64-64-10, SGD with momentum, batch 64. Two measurements, each interleaved round by round so that
every variant sees the same machine load, medians over rounds:

- the study engine: 20 replicas trained as one stacked group for a few epochs: plain SGD, RWP
  (filter-wise weight noise σ = 0.01, one gradient per step) and SAM (ρ = 0.05, two gradients);
- one ``nn.Module`` in a plain torch loop: plain, RWP through ``noisereg.attach(..., at="weights")``,
  and SAM written out (gradient, ascent ρ·g/‖g‖, gradient, descent at the original weights); the
  study's 64-64-10 MLP, where fixed costs per step dominate, and a wide one (``--width``, default
  1024), where the gradients do.

Printed: seconds per step of each, and the ratios RWP/plain, SAM/plain, RWP/SAM. RWP's claim (Li et
al. 2022, m-RWP 2024) is about half of SAM's cost: RWP/SAM near 0.5.

Run by hand: ``python benchmarks/rwp_sam_cost.py [--rounds 5] [--epochs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torch import nn

import noisereg
from noisereg.engine import FoldData, Group, MLPSpec, OptimSpec, Replica, SiteNoise
from noisereg.engine.group import train_group
from noisereg.noise import FilterGaussian


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    return x, torch.as_tensor(y)


def engine_variants(epochs: int) -> dict[str, Callable[[], float]]:
    x, y = _data()
    fold = FoldData(x[:500], y[:500], x[500:600], y[500:600])
    spec, replicas = MLPSpec(64, (64, 64), 10), tuple(Replica(s) for s in range(20))
    steps = epochs * 8  # 500 rows in batches of 64

    def run(optimizer: OptimSpec, sites: tuple[SiteNoise, ...]) -> Callable[[], float]:
        group = Group(spec, optimizer, "ce", epochs, 64, sites, replicas, eval_every=epochs)

        def timed() -> float:
            start = time.perf_counter()
            train_group(group, [fold])
            return (time.perf_counter() - start) / steps

        return timed

    sgd = OptimSpec("sgd", lr=0.05, momentum=0.9)
    return {
        "plain": run(sgd, ()),
        "RWP": run(sgd, (SiteNoise("weights", FilterGaussian(std=0.01)),)),
        "SAM": run(OptimSpec("sgd", lr=0.05, momentum=0.9, sam_rho=0.05), ()),
    }


def torch_variants(steps: int, width: int) -> dict[str, Callable[[], float]]:
    x, y = _data()
    x, y = x[:500], y[:500]

    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))

    def loop(variant: str) -> Callable[[], float]:
        def timed() -> float:
            net = model()
            handle = noisereg.attach(net, FilterGaussian(std=0.01), at="weights", seed=0) if variant == "RWP" else None
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
            params = list(net.parameters())
            net.train()
            start = time.perf_counter()
            for k in range(steps):
                i = slice((k * 64) % 448, (k * 64) % 448 + 64)
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[i]), y[i]).backward()
                if variant == "SAM":
                    with torch.no_grad():
                        g = [p.grad.clone() for p in params]
                        norm = torch.sqrt(sum((t * t).sum() for t in g))
                        e = [0.05 * t / norm for t in g]
                        for p, d in zip(params, e, strict=True):
                            p.add_(d)
                    opt.zero_grad()
                    nn.functional.cross_entropy(net(x[i]), y[i]).backward()
                    with torch.no_grad():
                        for p, d in zip(params, e, strict=True):
                            p.sub_(d)
                opt.step()
            elapsed = (time.perf_counter() - start) / steps
            if handle is not None:
                handle.remove()
            return elapsed

        return timed

    return {v: loop(v) for v in ("plain", "RWP", "SAM")}


def measure(title: str, variants: dict[str, Callable[[], float]], rounds: int) -> None:
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up (compilation of the stream kernels, allocator)
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{title}: seconds per step (median of {rounds} interleaved rounds)")
    for name, value in med.items():
        print(f"  {name:6s} {value * 1e3:8.3f} ms")
    print(
        f"  RWP/plain {med['RWP'] / med['plain']:.2f}  SAM/plain {med['SAM'] / med['plain']:.2f}  "
        f"RWP/SAM {med['RWP'] / med['SAM']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=1024, help="hidden width of the second torch-loop model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    measure("engine, 20 replicas stacked", engine_variants(args.epochs), args.rounds)
    measure("one nn.Module (64-64-10), torch loop", torch_variants(args.epochs * 8, 64), args.rounds)
    measure(
        f"one nn.Module ({args.width}-{args.width}-10), torch loop",
        torch_variants(args.epochs * 8, args.width),
        args.rounds,
    )


if __name__ == "__main__":
    main()
